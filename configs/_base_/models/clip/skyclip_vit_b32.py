# SkyCLIP ViT-B-32 (Wang et al., SkyScript, AAAI 2024; github.com/wangzhecheng/SkyScript).
# checkpoint: the epoch_N.pt inside SkyCLIP_ViT_B32_top50pct.zip
#   (https://opendatasharing.s3.us-west-2.amazonaws.com/SkyScript/ckpt/, README "Download model
#   checkpoints"): an open_clip training file {epoch, name, state_dict (DDP 'module.' keys),
#   optimizer} (src/training/main.py); the loader unwraps it.
# model_name / quick_gelu: README "Training": ViT-B-32 initialised from open_clip's 'laion2b_e16'
#   (GELU); the test notebook adds --force-quick-gelu only for ViT-L-14.
# Image size 224; 77 text tokens (open_clip's ViT-B-32 config).
model = dict(
    type='CLIP',
    model_name='ViT-B-32',
    quick_gelu=False,
    checkpoint=None,  # path of SkyCLIP_ViT_B32_top50pct/epoch_N.pt
    checkpoint_layout='skyclip',
    tokenizer=dict(type='open_clip', name='ViT-B-32'))
