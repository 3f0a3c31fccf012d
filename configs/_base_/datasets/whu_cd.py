# WHU-CD (Ji et al., "Fully Convolutional Networks for Multisource Building Extraction From an
# Open Aerial and Satellite Imagery Data Set", TGRS 2019): one 32507x15354 0.3 m aerial pair of
# Christchurch (2012 -> 2016), building changes. Expected as the WHU-CD-256 crops (BIT / open-cd):
# data_root/{A,B,label}/<name>.png with list/{train,val,test}.txt, labels 0/255 (see
# mmrs.datasets.WHUCDDataset).
dataset_type = 'WHUCDDataset'
data_root = 'data/WHU-CD-256'
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
