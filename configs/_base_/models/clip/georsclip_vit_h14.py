# GeoRSCLIP ViT-H-14 (Zhang et al., RS5M, TGRS 2024; github.com/om-ai-lab/RS5M).
# checkpoint: ckpt/RS5M_ViT-H-14.pt of huggingface.co/Zilun/GeoRSCLIP (RS5M README "Usage"): a bare
#   open_clip state dict (see georsclip_vit_b32.py).
# model_name / quick_gelu: inference/inference.py builds create_model_and_transforms("ViT-H/14",
#   pretrained="laion2b_s32b_b79k"): a LAION-2B open_clip model, trained with plain GELU.
# Image size 224 (inference.py get_preprocess(image_resolution=224)); 77 text tokens.
model = dict(
    type='CLIP',
    model_name='ViT-H-14',
    quick_gelu=False,
    checkpoint=None,  # path or URL of RS5M_ViT-H-14.pt
    checkpoint_layout='georsclip',
    tokenizer=dict(type='open_clip', name='ViT-H-14'))
