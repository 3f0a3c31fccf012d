"""Change detectors: the base class, Siamese binary CD and semantic CD."""
from .base import BaseChangeDetector
from .changemamba import (MAMBABDA_KEY_MAP, MAMBASCD_KEY_MAP, MambaBCDDetector,
                          MambaBDADetector, MambaSCDDetector, ignore_zero_target)
from .siamese import BACKBONE_INPUTS, SiameseChangeDetector
from .siamese_scd import SiameseSemanticChangeDetector, semantic_head_target

__all__ = [
    'BaseChangeDetector', 'BACKBONE_INPUTS', 'MAMBABDA_KEY_MAP', 'MAMBASCD_KEY_MAP',
    'MambaBCDDetector', 'MambaBDADetector', 'MambaSCDDetector', 'SiameseChangeDetector',
    'SiameseSemanticChangeDetector', 'ignore_zero_target', 'semantic_head_target'
]
