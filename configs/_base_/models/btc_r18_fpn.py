# BTC-style baseline with an FPN decoder: the R18 + UPerNet model with SubDiff fusion followed
# by mmseg's FPN neck (chained by SequentialNeck) and mmseg's FPNHead instead of UPerHead.
_base_ = ['./btc_r18_upernet.py']
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    neck=dict(
        _delete_=True,
        type='SequentialNeck',
        necks=[
            dict(type='FeatureFusionNeck', policy='diff'),
            dict(type='mmseg.FPN', in_channels=[64, 128, 256, 512], out_channels=128,
                 num_outs=4),
        ]),
    decode_head=dict(
        _delete_=True,
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
            loss_weight=1.0)))
