# RemoteCLIP ViT-B/32 (Liu et al., TGRS 2024) zero-shot scene classification on NWPU-RESISC45.
# Protocol of RemoteCLIP's evaluation code (ChenDelong1999/ITRA, itra/evaluation/zero_shot.py
# and itra/data/classification_datasets.py): the last 20% of each class folder (ITRA lists the
# folder in glob order, which depends on the file system; here the sorted order), ITRA's class
# strings (style='remoteclip') and templates, template embeddings averaged raw, then
# normalised (ensemble='raw_mean'), logits 100 * cosine.
_base_ = [
    '../_base_/models/clip/remoteclip_vit_b32.py',
    '../_base_/datasets/scene_cls/resisc45.py',
    '../_base_/default_runtime.py',
]
model = dict(
    _delete_=True,
    type='CLIPZeroShotClassifier',
    clip={{_base_.model}},
    class_names=dict(dataset='RESISC45Dataset', style='remoteclip'),
    templates='remoteclip_resisc45',
    ensemble='raw_mean',
    logit_scale=100.0)
test_dataloader = dict(dataset=dict(split_ratio=0.8, split='test'))
val_dataloader = test_dataloader
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
