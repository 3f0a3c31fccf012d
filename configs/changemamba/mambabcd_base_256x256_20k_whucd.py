# MambaBCD-Base (92,399,874 parameters, as official) on WHU-CD; recipe as the Tiny config.
_base_ = ['./mambabcd_tiny_256x256_20k_whucd.py']
model = dict(
    # VMamba-B (the preset arch='base'), dims 128 / 256 / 512 / 1024
    backbone=dict(arch=dict(depths=[2, 2, 15, 2], dims=128, drop_path_rate=0.6)),
    decode_head=dict(in_channels=[256, 512, 1024, 2048]))
