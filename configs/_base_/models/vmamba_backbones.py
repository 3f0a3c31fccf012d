# VMamba encoders with ChangeMamba's vssm1 settings (Liu et al., "VMamba: Visual State Space
# Model", NeurIPS 2024; Chen et al., "ChangeMamba", TGRS 2024): depths / dims / drop path per
# variant, ssm_d_state=1, ssm_ratio=2, dt_rank auto, forward_type 'v3noz', MLP ratio 4, patch
# embed v2, downsample v3, LayerNorm (channel-last). Use in a model config as
# ``_base_ = ['../_base_/models/vmamba_backbones.py']`` and ``backbone={{_base_.vmamba_tiny}}``.
# Encoder parameters (equal to the official Backbone_VSSM): 27,993,984 / 49,380,096 / 87,534,592.
# ImageNet weights: the official VMamba-T/S/B checkpoints (ChangeMamba's README, Zenodo 14037770),
# loaded with init_cfg=dict(type='Pretrained', checkpoint=...); a MambaBCD checkpoint needs
# prefix='encoder.'. Set in_channels for multispectral inputs: the RGB stem is inflated on load.
vmamba_tiny = dict(type='VMamba', arch='tiny', in_channels=3, out_indices=(0, 1, 2, 3),
                   scan_backend='auto')
vmamba_small = dict(type='VMamba', arch='small', in_channels=3, out_indices=(0, 1, 2, 3),
                    scan_backend='auto')
vmamba_base = dict(type='VMamba', arch='base', in_channels=3, out_indices=(0, 1, 2, 3),
                   scan_backend='auto')
