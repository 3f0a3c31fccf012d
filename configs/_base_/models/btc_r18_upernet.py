# BTC baseline (Rolih et al., "Be the Change You Want to See", TGRS 2025): a shared
# backbone, plain feature subtraction (BTC's SubDiff = f1 - f2) and a UPerNet decoder.
# BTC itself uses Swin backbones and a dice loss; this is the ResNet-18 + CE variant.
norm_cfg = dict(type='BN', requires_grad=True)  # use SyncBN for multi-GPU training
data_preprocessor = dict(
    type='ChangeDataPreprocessor',
    mean=[123.675, 116.28, 103.53],  # ImageNet RGB x 255, shared by both dates
    std=[58.395, 57.12, 57.375],
    size_divisor=32,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='SiameseChangeDetector',
    data_preprocessor=data_preprocessor,
    # Random init. For ImageNet weights set in the backbone
    #   init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnet18_v1c')
    # (or pretrained='open-mmlab://resnet18_v1c' here, which does the same).
    pretrained=None,
    backbone=dict(
        type='mmseg.ResNetV1c',
        depth=18,
        in_channels=3,  # bands per date
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        dilations=(1, 1, 1, 1),
        strides=(1, 2, 2, 2),
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        contract_dilation=True),
    neck=dict(type='FeatureFusionNeck', policy='diff', in_channels=[64, 128, 256, 512]),
    decode_head=dict(
        type='mmseg.UPerHead',
        in_channels=[64, 128, 256, 512],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=128,
        dropout_ratio=0.1,
        num_classes=2,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='mmseg.CrossEntropyLoss', use_sigmoid=False, avg_non_ignore=True,
            loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
