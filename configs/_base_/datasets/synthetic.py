# Synthetic bitemporal GeoTIFF scenes (mmrs.datasets.synthetic): procedurally drawn land cover
# where buildings/roads appear or vanish between dates, plus illumination/season shifts that
# are NOT change. Generated on first use into data_root (idempotent, seedable).
# Labels are decoded with the dataset's label_encoding (class default '0/255'); set
# nodata=<value> / ignore_nodata=True|False in the dataset dicts to control nodata pixels.
dataset_type = 'SyntheticChangeDataset'
data_root = 'data/synthetic'
scene_size = 128
num_samples = dict(train=200, val=24, test=40)
synthetic = dict(
    type=dataset_type, data_root=data_root, num_samples=num_samples, size=scene_size, seed=0)
train_pipeline = [
    dict(type='LoadBitemporalImages'),
    dict(type='LoadChangeAnnotations'),
    dict(type='PairedRandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PairedRandomRotate90', prob=0.5),
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
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(**synthetic, split='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(**synthetic, split='val', pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(**synthetic, split='test', pipeline=test_pipeline))
val_evaluator = dict(type='ChangeMetric')
test_evaluator = val_evaluator
