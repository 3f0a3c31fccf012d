# ChangeViT-S on CLCD (32,238,880 parameters: the official Trainer('small') minus its
# unused ResNet layer4 / fc and ViT mask_token); recipe as the Tiny config. The ViT has the
# DINOv2-S width (384, 6 heads) with patch 16, initialised from dinov2_vits14_pretrain.pth as
# the official: without position embedding, patch-projection weight and LayerScale gammas.
_base_ = ['./changevit_tiny_256x256_80k_clcd.py']
model = dict(
    backbone=dict(vit=dict(
        embed_dims=384, num_heads=6,
        init_cfg=dict(type='Pretrained', checkpoint='pretrain/dinov2_vits14_pretrain.pth'))),
    decode_head=dict(in_channels=[64, 128, 256, 384]))
