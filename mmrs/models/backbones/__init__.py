"""Backbones registered by mmrs (mmseg/mmpretrain backbones are used by prefix)."""
from .changevit_encoder import ChangeViTEncoder
from .clip_backbone import CLIPImageBackbone
from .fc_siam import FCSiamEncoder
from .vit_dinov2 import DINOv2ViT
from .vmamba import VMamba, inflate_rgb_stem

__all__ = ['CLIPImageBackbone', 'ChangeViTEncoder', 'DINOv2ViT', 'FCSiamEncoder', 'VMamba',
           'inflate_rgb_stem']
