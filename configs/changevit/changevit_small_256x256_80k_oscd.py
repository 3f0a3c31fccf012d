# ChangeViT-S on OSCD (13 bands); see changevit_tiny_256x256_80k_oscd.py.
_base_ = ['./changevit_tiny_256x256_80k_oscd.py']
model = dict(
    backbone=dict(vit=dict(
        embed_dims=384, num_heads=6,
        init_cfg=dict(type='Pretrained', checkpoint='pretrain/dinov2_vits14_pretrain.pth'))),
    decode_head=dict(in_channels=[64, 128, 256, 384]))
