"""Decode heads registered by mmrs (mmseg heads are used by prefix, e.g. mmseg.UPerHead)."""
from .fc_siam_head import FCSiamDiffHead

__all__ = ['FCSiamDiffHead']
