"""Backbones registered by mmrs (mmseg/mmpretrain backbones are used by prefix)."""
from .fc_siam import FCSiamEncoder
from .vmamba import VMamba, inflate_rgb_stem

__all__ = ['FCSiamEncoder', 'VMamba', 'inflate_rgb_stem']
