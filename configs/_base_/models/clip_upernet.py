# CLIP ViT-B/16 image tower + UPerNet: semantic segmentation with a CLIP backbone.
# The tower is open_clip's (mmrs CLIPImageBackbone): the outputs of blocks 4, 6, 8 and 12 (the
# DenseCLIP choice, Rao et al., CVPR 2022) become maps at strides 4/8/16/32 through the simple
# feature pyramid of ViTDet / mmseg's BEiT UPerNet, then mmseg's UPerHead.
# Random init. For CLIP weights of any family set in the backbone
#   checkpoint='path/to/clip.pt', checkpoint_layout='auto'   # e.g. a RemoteCLIP / GeoRSCLIP file
# and quick_gelu=True for OpenAI-initialised checkpoints (RemoteCLIP, FarSLIP, ...).
# Change detection: put the same backbone into configs/_base_/models/btc_r18_upernet.py
# (SiameseChangeDetector, FeatureFusionNeck(policy='diff', in_channels=[768] * 4), UPerHead
# in_channels=[768] * 4) with that file's ChangeDataPreprocessor using the CLIP mean/std below.
norm_cfg = dict(type='BN', requires_grad=True)  # use SyncBN for multi-GPU training
data_preprocessor = dict(
    type='mmseg.SegDataPreProcessor',
    # OpenAI CLIP RGB mean/std x 255 (open_clip.constants OPENAI_DATASET_MEAN/STD)
    mean=[122.7709383, 116.7460125, 104.09373615],
    std=[68.5005327, 66.6321579, 70.32316305],
    bgr_to_rgb=True,
    size_divisor=32,  # the coarsest pyramid level (the backbone pads other sizes itself)
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='mmseg.EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='CLIPImageBackbone',
        model_name='ViT-B-16',
        quick_gelu=False,
        checkpoint=None,
        checkpoint_layout='auto',
        out_indices=(3, 5, 7, 11),
        feature_pyramid=True,  # strides 4, 8, 16, 32
        pyramid_norm_cfg=norm_cfg,
        in_channels=3,
        frozen_stages=-1),
    decode_head=dict(
        type='mmseg.UPerHead',
        in_channels=[768, 768, 768, 768],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=6,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='mmseg.CrossEntropyLoss', use_sigmoid=False, avg_non_ignore=True,
            loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
