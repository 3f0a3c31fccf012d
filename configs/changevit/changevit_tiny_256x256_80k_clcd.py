# ChangeViT-T on CLCD with the official recipe (github.com/zhuduowang/ChangeViT, main.py,
# model/utils.py, README command): 256x256 crops (the official pre-crops every dataset into
# 256x256 patches), batch 16, 80k iterations of Adam lr 2e-4 with warm-up + poly decay
# (schedule_changevit_80k.py), BCE + (1 - batch Dice) on the sigmoid output; independent
# vertical and horizontal flips (p=0.5 each) and date exchange (p=0.5), ImageNet
# normalisation. The official random border crop + resize back (p=0.5, at most 8 px a side,
# a <= 6.7 % zoom) has no mmrs transform and is omitted. Init as official: the ViT from DeiT-T
# (timm) without its position embedding and patch-projection weight (a raw DeiT file works:
# DINOv2ViT drops those keys), the ResNet-18 from torchvision's ImageNet weights. Testing on
# 256x256 tiles (slide, no overlap), as the official tests its 256x256 patches. The official
# keeps the checkpoint of best *test* F1; here the best val F1.
_base_ = [
    '../_base_/models/changevit.py', '../_base_/datasets/clcd.py',
    '../_base_/schedules/schedule_changevit_80k.py', '../_base_/default_runtime.py'
]
crop_size = (256, 256)
model = dict(
    backbone=dict(
        vit=dict(init_cfg=dict(type='Pretrained',
                               checkpoint='pretrain/deit_tiny_patch16_224-a1311bcf.pth')),
        resnet_init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=crop_size, crop_batch_size=4))
train_pipeline = [
    dict(type='LoadBitemporalImages'),
    dict(type='LoadChangeAnnotations'),
    dict(type='PairedRandomCrop', crop_size=crop_size),
    dict(type='PairedRandomFlip', prob=0.5, direction='vertical'),
    dict(type='PairedRandomFlip', prob=0.5, direction='horizontal'),
    dict(type='ExchangeTime', prob=0.5),
    dict(type='PackChangeInputs'),
]
train_dataloader = dict(batch_size=16, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=1)
test_dataloader = dict(batch_size=1)
