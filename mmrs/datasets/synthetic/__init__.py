"""Synthetic bitemporal GeoTIFF scenes with exact change labels (seedable, numpy only).

``generate_pair`` draws one pair in memory; ``write_synthetic_dataset`` writes a whole
train/val/test folder of GeoTIFFs; ``SyntheticChangeDataset`` reads (and, on first use,
generates) such a folder.

The generator names (``generate_pair``, ``write_synthetic_dataset``, ``SyntheticPair``,
``sample_seed`` ...) are resolved lazily (PEP 562): ``import mmrs.datasets`` registers the
dataset without importing the generator or rasterio.
"""
from importlib import import_module
from typing import Any

from .dataset import SyntheticChangeDataset
from .spec import (DEFAULT_COUNTS, DEFAULT_CRS, LAND_COVER_CLASSES, PIXEL_SIZE,
                   SEMANTIC_CLASSES, SEMANTIC_PALETTE)

_LAZY = {'SyntheticPair': 'generator', 'generate_pair': 'generator',
         'write_synthetic_dataset': 'generator', 'generator': None, 'scene': None,
         'changes': None}

__all__ = [
    'DEFAULT_COUNTS', 'DEFAULT_CRS', 'LAND_COVER_CLASSES', 'PIXEL_SIZE', 'SEMANTIC_CLASSES',
    'SEMANTIC_PALETTE', 'SyntheticChangeDataset', 'SyntheticPair', 'generate_pair',
    'write_synthetic_dataset'
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    module = _LAZY[name]
    if module is None:  # a submodule
        return import_module(f'{__name__}.{name}')
    return getattr(import_module(f'{__name__}.{module}'), name)
