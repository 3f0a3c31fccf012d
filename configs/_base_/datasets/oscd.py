# OSCD (Daudt, Le Saux, Boulch & Gousseau, "Urban Change Detection for Multispectral Earth
# Observation Using Convolutional Neural Networks", IGARSS 2018): 24 Sentinel-2 L1C pairs of
# cities, 13 bands at 10/20/60 m, 14 train / 10 test cities, whole scenes of varied size
# (hundreds of pixels a side at 10 m). data_root holds the three extracted archives
# ("Onera Satellite Change Detection dataset - Images", "- Train Labels", "- Test Labels");
# see mmrs.datasets.OSCDDataset. Each sample is one city: every band is resampled onto the
# 10 m grid of date 1's B02 (LoadBitemporalBandFiles; bilinear, or 'nearest').
#
# Training draws random crops of whole cities (InfiniteSampler over the 14 cities, one crop
# per draw; ChangeViT trains on 256x256 crops of OSCD, the official FC-Siam code on 96x96,
# torchgeo on 64x64). Testing runs on whole cities, one per batch (sizes differ); for large
# models use sliding windows: model.test_cfg=dict(mode='slide', crop_size=(256, 256),
# stride=(128, 128)). OSCD has no validation split: here the test cities double as
# validation (torchgeo instead holds out 20% of train); for a clean protocol pass explicit
# `cities=[...]` (a subset of the train cities) to the train and val datasets.
dataset_type = 'OSCDDataset'
data_root = 'data/OSCD'
bands = ('B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09', 'B10', 'B11',
         'B12')  # RGB only: ('B04', 'B03', 'B02'); keep oscd_mean/std in the same order
crop_size = (256, 256)
# L1C digital numbers are top-of-atmosphere reflectance x 10000 (ESA QUANTIFICATION_VALUE),
# stored as uint16: photometric augmentation works on that fixed range, not per-image extremes.
reflectance_range = (0, 10000)
# Per-band mean / std of OSCD in L1C digital numbers, as computed and published by torchgeo
# (torchgeo/datamodules/oscd.py, MEAN / STD), in the order of `bands` above. Use them in
# the model's data preprocessor, e.g.
#   data_preprocessor = dict(type='ChangeDataPreprocessor', mean={{_base_.oscd_mean}},
#                            std={{_base_.oscd_std}}, size_divisor=32)
# (or `oscd_data_preprocessor` below); with a band subset pick the matching entries.
oscd_mean = [1565.696, 1351.332, 1257.108, 1254.933, 1388.689, 1827.671, 2050.274, 1963.462,
             2182.681, 629.838, 14.856, 1909.839, 1379.602]
oscd_std = [263.798, 394.557, 508.967, 726.405, 686.611, 730.020, 822.013, 842.592, 895.765,
            314.841, 9.418, 984.925, 844.771]
oscd_data_preprocessor = dict(
    type='ChangeDataPreprocessor', mean=oscd_mean, std=oscd_std, size_divisor=32, pad_val=0,
    seg_pad_val=255)
train_pipeline = [
    dict(type='LoadBitemporalBandFiles', resampling='bilinear'),
    dict(type='LoadChangeAnnotations'),
    dict(type='PairedRandomCrop', crop_size=crop_size, cat_max_ratio=0.95),
    dict(type='PairedRandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PairedRandomRotate90', prob=0.5),
    dict(type='BitemporalPhotoMetricDistortion', value_range=reflectance_range),
    dict(type='ExchangeTime', prob=0.5),
    dict(type='PackChangeInputs'),
]
test_pipeline = [
    dict(type='LoadBitemporalBandFiles', resampling='bilinear'),
    dict(type='LoadChangeAnnotations'),
    dict(type='PackChangeInputs'),
]
oscd = dict(type=dataset_type, data_root=data_root, bands=bands, rect=True, label_format='png')
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(**oscd, split='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(**oscd, split='test', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='ChangeMetric')
test_evaluator = val_evaluator
