# RSITMD (RSITMDDataset): Yuan et al., TGRS 2022 (xiaoyuan1996/AMFMN). 4,743 images (256x256
# tif), 5 sentences each, splits train/test (no val: validation reads test). Layout expected
# under data_root (as distributed): dataset_RSITMD.json (Karpathy-style caption JSON) and
# images/ with the images. Training picks one random caption per image (RandomCaption); val/test
# pack all captions of each image for RetrievalMetric (protocols A and B, see
# docs/retrieval_protocols.md). Test-time preprocessing is open_clip's preprocess_val, as the
# RemoteCLIP / SkyScript / FarSLIP evaluation scripts use it: shortest side to 224 (bicubic),
# centre crop 224; normalisation happens in the CLIP data preprocessor.
dataset_type = 'RSITMDDataset'
data_root = 'data/RSITMD'
img_size = 224
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmpretrain.RandomResizedCrop', scale=img_size, crop_ratio_range=(0.9, 1.0),
         backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomCaption'),
    dict(type='mmpretrain.PackInputs', algorithm_keys=['text']),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmpretrain.ResizeEdge', scale=img_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='mmpretrain.PackInputs', algorithm_keys=['captions', 'img_id']),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 pipeline=test_pipeline))
val_evaluator = dict(type='RetrievalMetric', protocols=('A', 'B'), ks=(1, 5, 10))
test_evaluator = val_evaluator
