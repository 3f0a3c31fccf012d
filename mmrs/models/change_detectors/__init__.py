"""Change detectors: the base class, Siamese binary CD and semantic CD."""
from .base import BaseChangeDetector
from .siamese import BACKBONE_INPUTS, SiameseChangeDetector
from .siamese_scd import SiameseSemanticChangeDetector, semantic_head_target

__all__ = [
    'BaseChangeDetector', 'BACKBONE_INPUTS', 'SiameseChangeDetector',
    'SiameseSemanticChangeDetector', 'semantic_head_target'
]
