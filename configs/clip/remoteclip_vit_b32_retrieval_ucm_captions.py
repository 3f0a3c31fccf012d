# RemoteCLIP ViT-B/32 (Liu et al., TGRS 2024):
# zero-shot image-text retrieval on UCM-Captions (test split).
# Protocol A (ChenDelong1999/RemoteCLIP remoteclip_retrieval.py): raw sentences, capitalized.
# RetrievalMetric reports both protocols (A/..., B/...) from the same embeddings; the
# captions are formatted as this family's own evaluation does, so its own protocol's numbers
# are the comparable ones (docs/retrieval_protocols.md).
_base_ = [
    '../_base_/models/clip/remoteclip_vit_b32.py',
    '../_base_/datasets/retrieval/ucm_captions.py',
    '../_base_/default_runtime.py',
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmpretrain.ResizeEdge', scale=224, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatCaptions', capitalize=True),  # RemoteCLIP: text['raw'].capitalize()
    dict(type='mmpretrain.PackInputs', algorithm_keys=['captions', 'img_id']),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
