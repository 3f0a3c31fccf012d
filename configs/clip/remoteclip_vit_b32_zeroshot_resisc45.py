# RemoteCLIP ViT-B/32 (Liu et al., TGRS 2024) zero-shot scene classification on NWPU-RESISC45.
# Protocol: _base_/models/clip/zeroshot/remoteclip_vit_b32.py.
_base_ = [
    '../_base_/models/clip/zeroshot/remoteclip_vit_b32.py',
    '../_base_/datasets/scene_cls/resisc45.py',
]
model = dict(class_names=dict(dataset='RESISC45Dataset'), templates='remoteclip_resisc45')
# ITRA's hold-out: the last 20% of each class folder
test_dataloader = val_dataloader = dict(dataset=dict(split_ratio=0.8, split='test'))
