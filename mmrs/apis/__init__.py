"""Inferencers: whole-scene prediction on georeferenced rasters.

Imported lazily (``from mmrs.apis import ChangeDetectionInferencer`` loads torch and the
models only then).
"""
import importlib
from typing import Any

_NAMES = {
    'ChangeDetectionInferencer': 'change_inferencer',
    'TiledInferencer': 'change_inferencer',
    'InferenceSummary': 'change_inferencer',
    'SegmentationInferencer': 'segmentation_inferencer',
    'RotatedDetectionInferencer': 'rotated_inferencer',
    'CLIPArchiveSearch': 'clip_search', 'CLIPTileEncoder': 'clip_search',
    'TileArchive': 'clip_index',
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f'.{_NAMES[name]}', __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
