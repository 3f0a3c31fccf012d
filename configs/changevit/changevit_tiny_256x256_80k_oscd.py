# ChangeViT-T on OSCD, all 13 Sentinel-2 bands (the ViT patch projection and the ResNet stem
# take 13 bands; the ImageNet RGB ResNet stem is inflated on load, 'mean' mode, and the ViT
# patch projection starts at random anyway, as officially). Deviation: the official code reads
# OSCD as 3-band 256x256 image patches (cv2, like every other dataset), so its OSCD numbers are
# RGB-only; for that protocol set bands=('B04', 'B03', 'B02'), in_channels=3 and the matching
# three mean / std entries. Recipe otherwise as changevit_tiny_256x256_80k_levircd.py; testing
# on whole cities with 256x256 sliding windows (stride 128).
_base_ = [
    '../_base_/models/changevit.py', '../_base_/datasets/oscd.py',
    '../_base_/schedules/schedule_changevit_80k.py', '../_base_/default_runtime.py'
]
crop_size = (256, 256)
data_preprocessor = dict(
    type='ChangeDataPreprocessor', mean={{_base_.oscd_mean}}, std={{_base_.oscd_std}},
    size_divisor=16, pad_val=0, seg_pad_val=255)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        in_channels=13,
        vit=dict(init_cfg=dict(type='Pretrained',
                               checkpoint='pretrain/deit_tiny_patch16_224-a1311bcf.pth')),
        resnet_init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(128, 128), crop_batch_size=4))
train_pipeline = [
    dict(type='LoadBitemporalBandFiles', resampling='bilinear'),
    dict(type='LoadChangeAnnotations'),
    dict(type='PairedRandomCrop', crop_size=crop_size),
    dict(type='PairedRandomFlip', prob=0.5, direction='vertical'),
    dict(type='PairedRandomFlip', prob=0.5, direction='horizontal'),
    dict(type='ExchangeTime', prob=0.5),
    dict(type='PackChangeInputs'),
]
train_dataloader = dict(batch_size=16, dataset=dict(pipeline=train_pipeline))
