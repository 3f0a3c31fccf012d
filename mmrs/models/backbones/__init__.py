"""Backbones registered by mmrs (mmseg/mmpretrain backbones are used by prefix)."""
from .fc_siam import FCSiamEncoder

__all__ = ['FCSiamEncoder']
