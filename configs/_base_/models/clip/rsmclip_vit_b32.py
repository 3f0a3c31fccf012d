# RS-M-CLIP (Silva et al., "Multilingual Vision-Language Pre-training for the Remote Sensing
# Domain", arXiv 2410.23370; github.com/DannielSilva/RS-M-CLIP).
# checkpoint: the open_clip weights file of huggingface.co/joaodaniel/RS-M-CLIP
#   (open_clip_pytorch_model.bin or open_clip_model.safetensors; the README loads the repo with
#   open_clip.create_model_and_transforms('hf-hub:joaodaniel/RS-M-CLIP')).
# model_name / quick_gelu: fine-tuned from laion/CLIP-ViT-B-32-xlm-roberta-base-laion5B-s13B-b90k
#   (README), open_clip's 'xlm-roberta-base-ViT-B-32': ViT-B-32 image tower (GELU, LAION-trained)
#   and an XLM-RoBERTa-base text tower (HF transformers; keys text.transformer.*, text.proj.*).
# tokenizer: XLM-RoBERTa's sentencepiece tokenizer (open_clip config hf_tokenizer_name
#   'xlm-roberta-base'); save it locally first, e.g.
#   AutoTokenizer.from_pretrained('xlm-roberta-base').save_pretrained(LOCAL_DIR).
# Image size 224; 77 text tokens (open_clip's default context length).
model = dict(
    type='CLIP',
    model_name='xlm-roberta-base-ViT-B-32',
    quick_gelu=False,
    checkpoint=None,  # path of open_clip_pytorch_model.bin / open_clip_model.safetensors
    checkpoint_layout='rsmclip',
    tokenizer=dict(type='hf', path='data/tokenizers/xlm-roberta-base'))
