# Semantic change detection baseline (the layout of open-cd's scd_upernet_r18 / SECOND
# baselines): shared ResNet-18; a binary UPerNet change head on the fused (f1 - f2) pyramid;
# one UPerNet semantic head per date on that date's own pyramid.
# Semantic heads predict classes 1..K only ("no change" = 0 is ignored in their loss, the
# SECOND practice); predictions are (argmax + 1) * binary change.
num_semantic_classes = 6  # SECOND: water, ground, low vegetation, tree, building, playground
norm_cfg = dict(type='BN', requires_grad=True)  # use SyncBN for multi-GPU training
data_preprocessor = dict(
    type='ChangeDataPreprocessor',
    mean=[123.675, 116.28, 103.53],  # ImageNet RGB x 255, shared by both dates
    std=[58.395, 57.12, 57.375],
    size_divisor=32,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='SiameseSemanticChangeDetector',
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
    # Built twice (separate weights per date); share_semantic_head=True shares one head.
    semantic_head=dict(
        type='mmseg.UPerHead',
        in_channels=[64, 128, 256, 512],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=128,
        dropout_ratio=0.1,
        num_classes=num_semantic_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        # Averaged over changed pixels only (avg_non_ignore); loss_weight weighs each date's
        # semantic loss against the binary change loss.
        loss_decode=dict(
            type='mmseg.CrossEntropyLoss', use_sigmoid=False, avg_non_ignore=True,
            loss_weight=0.5)),
    share_semantic_head=False,
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
