# xBD (Gupta et al., CVPRW 2019), the xView2 building damage data set: 1024x1024 RGB
# pre/post-disaster pairs, building polygons graded no/minor/major damage or destroyed.
# Layout under data_root, as distributed: {train,tier3,test,hold}/images/
# <disaster>_<id>_{pre,post}_disaster.png, /labels/*.json, /targets/*_target.png (the targets
# are rasterised from the JSON labels on the fly when absent).
# Recipe of ChangeMamba's train_MambaBDA.py (MambaCD README command): 256x256 random crops
# (up to 10 draws until no localisation class covers >= 75% of the crop), left-right and
# up-down flips with p = 0.5 each (one of none / h / v / both with p = 1/4), then always a
# quarter turn k in {1, 2, 3}; no photometric augmentation (the pre/post order matters, so no
# ExchangeTime either). MambaCD's loader also sets damage background to ignore for training:
# MambaBDADetector does that in its loss (ignore_damage_background=True); for another model add
# ignore_damage_background=True to LoadXBDAnnotations below. Evaluation keeps the background
# (the xView2 scorer needs it). MambaCD trains on its train_all.txt list
# (not in its repository; add 'tier3' to split to train on both tiers) and validates on test.
dataset_type = 'XBDDataset'
data_root = 'data/xBD'
crop_size = (256, 256)
train_pipeline = [
    dict(type='LoadBitemporalImages'),
    dict(type='LoadXBDAnnotations'),
    dict(type='PairedRandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='PairedRandomFlip', prob=[0.25, 0.25, 0.25],
         direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='PairedRandomRotate90', prob=1.0),
    dict(type='PackChangeInputs'),
]
test_pipeline = [
    dict(type='LoadBitemporalImages'),
    dict(type='LoadXBDAnnotations'),
    dict(type='PackChangeInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=6,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline))
# full 1024x1024 tiles, one per batch, as MambaCD validates
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='XView2Metric')
test_evaluator = val_evaluator
