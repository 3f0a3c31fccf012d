# MambaBDA-Base (94,717,575 parameters, as official) on xBD; recipe as the Tiny config.
_base_ = ['./mambabda_tiny_256x256_50k_xbd.py']
model = dict(
    # VMamba-B (the preset arch='base'), dims 128 / 256 / 512 / 1024
    backbone=dict(arch=dict(depths=[2, 2, 15, 2], dims=128, drop_path_rate=0.6)),
    decode_head=dict(in_channels=[256, 512, 1024, 2048]),
    localization_head=dict(in_channels=[128, 256, 512, 1024]))
