# ChangeViT-T (Zhu et al., "ChangeViT: Unleashing Plain Vision Transformers for Change
# Detection", arXiv:2406.12847; github.com/zhuduowang/ChangeViT, model/{encoder,decoder,
# trainer}.py): per date a plain ViT (no class token, patch 16) and a ResNet-18 detail-capture
# module (stem without max-pool + layer1..3), the feature injector (ViT tokens cross-attend to
# the ResNet levels), then the date pair per level ([x, y] by the 'concat' neck) into the
# difference-modelling decoder with ONE sigmoid output channel (threshold 0.5).
# Loss as official model/utils.py: BCE + (1 - Dice), Dice over the whole batch.
# 11,753,728 parameters = the official Trainer('tiny') (20,660,648) minus what it builds but
# never runs: ResNet-18 layer4 (8,393,728) and fc (513,000), the ViT mask_token (192).
# Random init; the dataset configs set the official initialisation (DeiT-T / DINOv2-S ViT,
# torchvision ResNet-18).
data_preprocessor = dict(
    type='ChangeDataPreprocessor',
    mean=[123.675, 116.28, 103.53],  # ImageNet RGB x 255 (official Normalize, BGR order there)
    std=[58.395, 57.12, 57.375],
    size_divisor=16,  # the ViT's patch size
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='SiameseChangeDetector',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ChangeViTEncoder',
        in_channels=3,
        detail_base_channels=64,  # ResNet-18
        vit=dict(type='DINOv2ViT', img_size=256, patch_size=16, embed_dims=192,
                 num_layers=12, num_heads=6, mlp_ratio=4.0, qkv_bias=True,
                 drop_path_rate=0.0, layer_scale=None, always_interpolate=True),
        detail_dropout=0.01,
        injector_heads=8),
    neck=dict(type='FeatureFusionNeck', policy='concat'),
    decode_head=dict(
        type='ChangeViTHead',
        in_channels=[64, 128, 256, 192],  # one date: ResNet layer1..3, ViT width
        decay=4,
        num_classes=2,
        out_channels=1,
        threshold=0.5,
        align_corners=False,
        loss_decode=dict(type='mmrs.BCEDiceLoss', eps=1e-5, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
