# Landsat-SCD (Yuan et al., "Transformer-based Siamese network for semantic change detection in
# remote sensing images", 2022; release on figshare): 8468 416x416 Landsat pairs of Xinjiang
# (1990-2020), 4 land-cover classes (farmland, desert, building, water) + "no change" (0).
# Layout under data_root (the per-date form used by SCanNet / MambaCD; convert the original
# 10-class from-to "label" folder once with mmrs.datasets.landsat_scd.landsat_from_to_to_semantic):
# {A,B,labelA,labelB}/<name>.png + {train,val,test}_list.txt. The binary change map is derived
# from labelA (class 0 = no change).
dataset_type = 'LandsatSCDDataset'
data_root = 'data/Landsat-SCD'
crop_size = (416, 416)
train_pipeline = [
    dict(type='LoadBitemporalImages'),
    dict(type='LoadChangeAnnotations', semantic=True),
    dict(type='PairedRandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PairedRandomFlip', prob=0.5, direction='vertical'),
    dict(type='PairedRandomRotate90', prob=0.5),
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
val_evaluator = dict(type='SCDMetric', num_semantic_classes=5)
test_evaluator = val_evaluator
