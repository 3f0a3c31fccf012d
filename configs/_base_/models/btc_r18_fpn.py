# BTC-style baseline with an FPN decoder: shared ResNet-18, SubDiff fusion (f1 - f2), then
# mmseg's FPN neck and FPNHead. SequentialNeck chains the two-input fusion neck and FPN.
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
    # Random init; pretrained='open-mmlab://resnet18_v1c' loads ImageNet weights.
    pretrained=None,
    backbone=dict(
        type='mmseg.ResNetV1c',
        depth=18,
        in_channels=3,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        dilations=(1, 1, 1, 1),
        strides=(1, 2, 2, 2),
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        contract_dilation=True),
    neck=dict(
        type='SequentialNeck',
        necks=[
            dict(type='FeatureFusionNeck', policy='diff'),
            dict(type='mmseg.FPN', in_channels=[64, 128, 256, 512], out_channels=128,
                 num_outs=4),
        ]),
    decode_head=dict(
        type='mmseg.FPNHead',
        in_channels=[128, 128, 128, 128],
        in_index=[0, 1, 2, 3],
        feature_strides=[4, 8, 16, 32],
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
