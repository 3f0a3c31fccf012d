# SYSU-CD (Shi et al., "A Deeply Supervised Attention Metric-Based Network and an Open Aerial
# Image Dataset for Remote Sensing Change Detection", TGRS 2022): 20,000 256x256 0.5 m aerial
# pairs of Hong Kong (2007 -> 2014), 12,000 / 4,000 / 4,000 train / val / test. Layout:
# data_root/{train,val,test}/{time1,time2,label}/<name>.png, labels 0/255 (see
# mmrs.datasets.SYSUCDDataset).
dataset_type = 'SYSUCDDataset'
data_root = 'data/SYSU-CD'
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
