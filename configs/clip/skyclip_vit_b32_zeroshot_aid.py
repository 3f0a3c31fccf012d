# SkyCLIP ViT-B/32 (Wang et al., AAAI 2024) zero-shot scene classification on AID.
# Protocol: _base_/models/clip/zeroshot/skyclip_vit_b32.py.
_base_ = [
    '../_base_/models/clip/zeroshot/skyclip_vit_b32.py',
    '../_base_/datasets/scene_cls/aid.py',
]
model = dict(class_names=dict(dataset='AIDDataset'))
