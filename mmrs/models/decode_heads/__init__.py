"""Decode heads registered by mmrs (mmseg heads are used by prefix, e.g. mmseg.UPerHead)."""
from .changemamba_head import (CHANGEMAMBA_SSM_CFG, MAMBABCD_KEY_MAP, MambaBCDHead,
                               interleave_columns)
from .changemamba_semantic_head import MambaSemanticHead
from ..losses.bce_dice import BCEDiceLoss  # noqa: F401  (its old home; kept for imports)
from .changevit_head import ChangeViTHead
from .fc_siam_head import FCSiamDiffHead

__all__ = [
    'BCEDiceLoss', 'ChangeViTHead',
    'CHANGEMAMBA_SSM_CFG', 'FCSiamDiffHead', 'MAMBABCD_KEY_MAP', 'MambaBCDHead',
    'MambaSemanticHead', 'interleave_columns'
]
