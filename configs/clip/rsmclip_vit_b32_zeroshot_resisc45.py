# RS-M-CLIP ViT-B/32 (Silva et al., 2024) zero-shot scene classification on NWPU-RESISC45.
# ASSUMED protocol: RS-M-CLIP publishes no zero-shot evaluation code or templates
# (DannielSilva/RS-M-CLIP, joaodaniel/RS-M-CLIP); this uses RemoteCLIP's RESISC45 templates
# (OpenAI CLIP's) and hold-out, with the open_clip normalised-mean ensemble.
_base_ = [
    '../_base_/models/clip/rsmclip_vit_b32.py',
    '../_base_/datasets/scene_cls/resisc45.py',
    '../_base_/default_runtime.py',
]
model = dict(
    _delete_=True,
    type='CLIPZeroShotClassifier',
    clip={{_base_.model}},
    class_names=dict(dataset='RESISC45Dataset', style='display'),
    templates='remoteclip_resisc45',
    ensemble='normalized_mean',
    logit_scale=100.0)
test_dataloader = dict(dataset=dict(split_ratio=0.8, split='test'))
val_dataloader = test_dataloader
