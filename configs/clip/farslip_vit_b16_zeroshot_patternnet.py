# FarSLIP ViT-B/16 (Li et al., 2025) zero-shot scene classification on PatternNet.
# Protocol: _base_/models/clip/zeroshot/farslip_vit_b16.py.
_base_ = [
    '../_base_/models/clip/zeroshot/farslip_vit_b16.py',
    '../_base_/datasets/scene_cls/patternnet.py',
]
model = dict(class_names=dict(dataset='PatternNetDataset'))
