# RemoteCLIP ViT-L-14 (Liu et al., TGRS 2024; github.com/ChenDelong1999/RemoteCLIP).
# checkpoint: RemoteCLIP-ViT-L-14.pt from huggingface.co/chendelong/RemoteCLIP (README, "Load
#   RemoteCLIP"): a bare open_clip state dict (the README loads it with model.load_state_dict).
# model_name: open_clip 'ViT-L-14' (README; retrieval.py --model-name
#   choices RN50 / ViT-B-32 / ViT-L-14).
# quick_gelu: initialised from OpenAI CLIP; retrieval.py builds the model with pretrained='openai',
#   which open_clip builds with QuickGELU (the README demo's plain create_model would use GELU).
# Image size 224 and 77 text tokens: open_clip's ViT-L-14 config (OpenAI CLIP's).
# See docs/clip_layouts.md.
model = dict(
    type='CLIP',
    model_name='ViT-L-14',
    quick_gelu=True,
    checkpoint=None,  # path or URL of RemoteCLIP-ViT-L-14.pt
    checkpoint_layout='remoteclip',
    tokenizer=dict(type='open_clip', name='ViT-L-14'))
