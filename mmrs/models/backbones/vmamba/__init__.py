"""VMamba (Liu et al., NeurIPS 2024), the encoder of ChangeMamba (Chen et al., TGRS 2024)."""
from .backbone import ARCH_SETTINGS, STEM_KEY, VMamba, inflate_rgb_stem
from .blocks import VSSBlock, VSSStage
from .ss2d import SCAN_BACKENDS, SS2D, set_scan_backend

__all__ = [
    'ARCH_SETTINGS', 'SCAN_BACKENDS', 'SS2D', 'STEM_KEY', 'VMamba', 'VSSBlock', 'VSSStage',
    'inflate_rgb_stem', 'set_scan_backend'
]
