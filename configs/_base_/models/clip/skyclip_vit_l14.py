# SkyCLIP ViT-L-14 (Wang et al., SkyScript, AAAI 2024; github.com/wangzhecheng/SkyScript).
# checkpoint: the epoch_N.pt inside SkyCLIP_ViT_L14_top30pct.zip (or _top50pct,
#   _top30pct_filtered_by_CLIP_laion_RS, _top30pct_multi_objects;
#   https://opendatasharing.s3.us-west-2.amazonaws.com/SkyScript/ckpt/, README "Download model
#   checkpoints"; FarSLIP's tests/test_scene_classification.py points at .../epoch_20.pt): an
#   open_clip training file {epoch, name, state_dict ('module.' keys), optimizer}.
# model_name / quick_gelu: README "Training" (ViT-L-14 initialised from 'openai') and
#   test_scene_and_fine_grained_classification.ipynb ("--force-quick-gelu ... because the
#   ViT-L-14 model is initialized with the OpenAI model").
# Image size 224; 77 text tokens (open_clip's ViT-L-14 config).
model = dict(
    type='CLIP',
    model_name='ViT-L-14',
    quick_gelu=True,
    checkpoint=None,  # path of SkyCLIP_ViT_L14_top30pct/epoch_N.pt
    checkpoint_layout='skyclip',
    tokenizer=dict(type='open_clip', name='ViT-L-14'))
