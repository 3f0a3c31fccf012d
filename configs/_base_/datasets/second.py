# SECOND (Yang et al., TGRS 2021): 4662 pairs of 512x512 aerial images, semantic change with
# 6 land-cover classes + "no change" (0). Layout under data_root:
# {train,test}/{im1,im2,label1,label2}/*.png (labels as the official RGB palette or as indices).
# The binary change map is derived from label1 (class 0 = no change); label_encoding only
# applies if data_prefix names a binary folder.
dataset_type = 'SECONDDataset'
data_root = 'data/SECOND'
crop_size = (512, 512)
train_pipeline = [
    dict(type='LoadBitemporalImages'),
    dict(type='LoadChangeAnnotations', semantic=True),
    dict(type='PairedRandomCrop', crop_size=crop_size),
    dict(type='PairedRandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PairedRandomRotate90', prob=0.5),
    dict(type='BitemporalPhotoMetricDistortion'),
    dict(type='ExchangeTime', prob=0.5),
    dict(type='PackChangeInputs'),
]
test_pipeline = [
    dict(type='LoadBitemporalImages'),
    dict(type='LoadChangeAnnotations', semantic=True),
    dict(type='PackChangeInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline))
# SECOND has no official validation split; the test split doubles as validation, as in
# the SECOND paper and open-cd.
val_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='SCDMetric', num_semantic_classes=7)
test_evaluator = val_evaluator
