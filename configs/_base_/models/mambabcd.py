# MambaBCD (Chen et al., "ChangeMamba: Remote Sensing Change Detection With Spatiotemporal State
# Space Model", IEEE TGRS 2024; github.com/ChenHongruixuan/MambaCD, changedetection/models/
# MambaBCD.py + ChangeDecoder.py): a VMamba encoder shared by both dates, the per-level
# [pre, post] concatenation (FeatureFusionNeck 'concat'), the spatio-temporal decoder with its
# parallel / sequential / cross VSS blocks and the 2-class classifier (MambaBCDHead).
# Loss as official train_MambaBCD.py: cross-entropy + 0.75 * Lovasz-softmax, ignore 255.
# This file is MambaBCD-Tiny (32,613,506 parameters, equal to the official model); the Small /
# Base configs swap the backbone arch and the head's in_channels (53,999,618 / 92,399,874).
# Random init; for the official ImageNet VMamba weights set backbone.init_cfg=dict(
# type='Pretrained', checkpoint=<vssm_tiny_0230_ckpt_epoch_262.pth>) and for a trained official
# MambaBCD checkpoint convert it with tools/model_converters/mambacd2mmrs.py and use load_from.
data_preprocessor = dict(
    type='ChangeDataPreprocessor',
    mean=[123.675, 116.28, 103.53],  # ImageNet RGB x 255 (official imutils.normalize_img)
    std=[58.395, 57.12, 57.375],
    size_divisor=32,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='MambaBCDDetector',
    data_preprocessor=data_preprocessor,
    # Selective-scan backend of every SS2D layer, encoder *and* decoder VSS blocks ('auto':
    # the CUDA kernel on a GPU when importable, else the portable scan; 'torch' / 'cuda').
    scan_backend='auto',
    pretrained=None,
    # arch: VMamba-T, written out (equal to the preset arch='tiny') so that the Small / Base
    # configs and the model sweep can override its fields.
    backbone=dict(type='VMamba', arch=dict(depths=[2, 2, 4, 2], dims=96, drop_path_rate=0.2),
                  in_channels=3, out_indices=(0, 1, 2, 3)),
    neck=dict(type='FeatureFusionNeck', policy='concat'),
    decode_head=dict(
        type='MambaBCDHead',
        in_channels=[192, 384, 768, 1536],  # 2 x VMamba-T dims (96, 192, 384, 768)
        channels=128,
        norm_layer='ln',
        mlp_ratio=4.0,
        drop_path=0.1,
        num_classes=2,
        align_corners=False,
        loss_decode=[
            dict(type='mmseg.CrossEntropyLoss', use_sigmoid=False, avg_non_ignore=True,
                 loss_weight=1.0),
            dict(type='mmseg.LovaszLoss', loss_type='multi_class', classes='present',
                 per_image=False, reduction='none', loss_weight=0.75),
        ]),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
