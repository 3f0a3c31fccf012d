"""Synthetic bitemporal GeoTIFF scenes with exact change labels (seedable, numpy only).

``generate_pair`` draws one pair in memory; ``write_synthetic_dataset`` writes a whole
train/val/test folder of GeoTIFFs; ``SyntheticChangeDataset`` reads (and, on first use,
generates) such a folder.
"""
from .dataset import SyntheticChangeDataset
from .generator import (DEFAULT_COUNTS, DEFAULT_CRS, PIXEL_SIZE, SyntheticPair,
                        generate_pair, write_synthetic_dataset)
from .scene import LAND_COVER_CLASSES, SEMANTIC_CLASSES, SEMANTIC_PALETTE

__all__ = [
    'DEFAULT_COUNTS', 'DEFAULT_CRS', 'LAND_COVER_CLASSES', 'PIXEL_SIZE', 'SEMANTIC_CLASSES',
    'SEMANTIC_PALETTE', 'SyntheticChangeDataset', 'SyntheticPair', 'generate_pair',
    'write_synthetic_dataset'
]
