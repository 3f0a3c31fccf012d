# GeoRSCLIP ViT-B/32 (Zhang et al., RS5M, 2024) zero-shot scene classification on NWPU-RESISC45.
# Protocol: _base_/models/clip/zeroshot/georsclip_vit_b32.py.
_base_ = [
    '../_base_/models/clip/zeroshot/georsclip_vit_b32.py',
    '../_base_/datasets/scene_cls/resisc45.py',
]
model = dict(class_names=dict(dataset='RESISC45Dataset'))
