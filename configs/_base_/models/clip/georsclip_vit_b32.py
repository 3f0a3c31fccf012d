# GeoRSCLIP ViT-B-32 (Zhang et al., RS5M, TGRS 2024; github.com/om-ai-lab/RS5M).
# checkpoint: ckpt/RS5M_ViT-B-32.pt of huggingface.co/Zilun/GeoRSCLIP (RS5M README "Usage"): a bare
#   open_clip state dict, written by inference/convert_weight.py (model.state_dict()) from the ITRA
#   training file, whose image_backbone./text_backbone. keys the 'georsclip' layout also reads.
# model_name / quick_gelu: inference/inference.py builds create_model_and_transforms("ViT-B/32",
#   pretrained="openai"): OpenAI CLIP's architecture with QuickGELU.
# Image size 224 (inference.py get_preprocess(image_resolution=224)); 77 text tokens.
model = dict(
    type='CLIP',
    model_name='ViT-B-32',
    quick_gelu=True,
    checkpoint=None,  # path or URL of RS5M_ViT-B-32.pt
    checkpoint_layout='georsclip',
    tokenizer=dict(type='open_clip', name='ViT-B-32'))
