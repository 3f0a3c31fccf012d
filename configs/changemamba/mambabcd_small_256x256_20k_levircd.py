# MambaBCD-Small (53,999,618 parameters, as official) on LEVIR-CD; recipe as the Tiny config.
_base_ = ['./mambabcd_tiny_256x256_20k_levircd.py']
model = dict(
    # VMamba-S (the preset arch='small'), dims 96 / 192 / 384 / 768
    backbone=dict(arch=dict(depths=[2, 2, 15, 2], dims=96, drop_path_rate=0.3)),
    decode_head=dict(in_channels=[192, 384, 768, 1536]))
