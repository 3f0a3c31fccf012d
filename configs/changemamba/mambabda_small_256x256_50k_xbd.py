# MambaBDA-Small (56,255,879 parameters, as official) on xBD; recipe as the Tiny config.
_base_ = ['./mambabda_tiny_256x256_50k_xbd.py']
model = dict(
    # VMamba-S (the preset arch='small'), dims 96 / 192 / 384 / 768
    backbone=dict(arch=dict(depths=[2, 2, 15, 2], dims=96, drop_path_rate=0.3)),
    decode_head=dict(in_channels=[192, 384, 768, 1536]),
    localization_head=dict(in_channels=[96, 192, 384, 768]))
