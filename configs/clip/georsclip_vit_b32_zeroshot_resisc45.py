# GeoRSCLIP ViT-B/32 (Zhang et al., RS5M, 2024) zero-shot scene classification on NWPU-RESISC45.
# Protocol of GeoRSCLIP's evaluation code (om-ai-lab/RS5M inference/inference_tool.py): the whole
# data set (torchrs ImageFolder), folder names with '_'/'/' -> ' ' and lower-cased as class
# strings (style='georsclip': AID 'denseresidential', EuroSAT 'annualcrop'), the 105 RS5M
# templates, template embeddings averaged raw, then normalised, logits 100 * cosine.
_base_ = [
    '../_base_/models/clip/georsclip_vit_b32.py',
    '../_base_/datasets/scene_cls/resisc45.py',
    '../_base_/default_runtime.py',
]
model = dict(
    _delete_=True,
    type='CLIPZeroShotClassifier',
    clip={{_base_.model}},
    class_names=dict(dataset='RESISC45Dataset', style='georsclip'),
    templates='georsclip',
    ensemble='raw_mean',
    logit_scale=100.0)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
