# FC-Siam-diff (Daudt, Le Saux & Boulch, "Fully Convolutional Siamese Networks for Change
# Detection", ICIP 2018): shared 4-stage encoder, |f1 - f2| skips, U-Net decoder.
# Trained from scratch (no pretrained weights exist for this encoder).
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(
    type='ChangeDataPreprocessor',
    # ImageNet RGB statistics x 255, shared by both dates (give 2*C values for per-date stats).
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    size_divisor=32,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='SiameseChangeDetector',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='FCSiamEncoder',
        in_channels=3,  # bands per date
        channels=(16, 32, 64, 128),
        num_convs=(2, 2, 3, 3),
        dropout=0.2,
        norm_cfg=norm_cfg),
    # Skips and bottleneck are fused by |f1 - f2|; channels unchanged.
    neck=dict(type='FeatureFusionNeck', policy='abs_diff'),
    decode_head=dict(
        type='FCSiamDiffHead',
        in_channels=(16, 32, 64, 128, 128),
        decoder_channels=(16, 32, 64, 128),
        num_convs=(2, 2, 3, 3),
        dropout=0.2,
        num_classes=2,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='mmseg.CrossEntropyLoss', use_sigmoid=False, avg_non_ignore=True,
            loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
