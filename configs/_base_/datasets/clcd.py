# CLCD (Liu et al., "A CNN-Transformer Network With Multiscale Context Aggregation for
# Fine-Grained Cropland Change Detection", IEEE JSTARS 2022; github.com/liumency/CropLand-CD):
# 600 pairs of 512x512 Gaofen-2 crops (0.5-2 m), cropland changes, split 360 / 120 / 120.
# Layout under data_root (the extracted CLCD folder): {train,val,test}/{time1,time2,label}/
# <name>.png, labels 0/255 (see mmrs.datasets.CLCDDataset).
dataset_type = 'CLCDDataset'
data_root = 'data/CLCD'
crop_size = (256, 256)
train_pipeline = [
    dict(type='LoadBitemporalImages'),
    dict(type='LoadChangeAnnotations'),
    dict(type='PairedRandomCrop', crop_size=crop_size, cat_max_ratio=0.95),
    dict(type='PairedRandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PairedRandomRotate90', prob=0.5),
    dict(type='BitemporalPhotoMetricDistortion'),
    dict(type='ExchangeTime', prob=0.5),
    dict(type='PackChangeInputs'),
]
test_pipeline = [
    dict(type='LoadBitemporalImages'),
    dict(type='LoadChangeAnnotations'),
    dict(type='PackChangeInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='val',
                 pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 pipeline=test_pipeline))
val_evaluator = dict(type='ChangeMetric')
test_evaluator = val_evaluator
