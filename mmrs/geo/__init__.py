"""Large-scene geospatial building blocks, model-agnostic (no model imports).

- :mod:`~mmrs.geo.raster`: open a bitemporal pair on one grid, windowed reads, nodata masks;
- :mod:`~mmrs.geo.tiling`: the overlapping tile grid and its blending weights;
- :mod:`~mmrs.geo.stitch`: streaming blend of tile probabilities in bounded memory;
- :mod:`~mmrs.geo.writer`: block-by-block tiled, compressed GeoTIFF / COG output;
- :mod:`~mmrs.geo.atomic`: all-or-nothing output files;
- :mod:`~mmrs.geo.vectorize`: polygons from a stitched raster.

Names are imported lazily (``from mmrs.geo import TileGrid`` loads only ``tiling``), so
``import mmrs.geo`` does not load GDAL.
"""
import importlib
from typing import Any

_NAMES = {
    'RasterPair': 'raster', 'open_pair': 'raster', 'open_raster': 'raster',
    'parse_bands': 'raster', 'RESAMPLINGS': 'raster',
    'SingleRaster': 'single', 'open_single': 'single',
    'TileGrid': 'tiling', 'Tile': 'tiling', 'BLENDINGS': 'tiling', 'ramp': 'tiling',
    'Stitcher': 'stitch', 'FinalBlock': 'stitch',
    'GeoTiffWriter': 'writer', 'PROBABILITY_DTYPES': 'writer',
    'atomic_output': 'atomic', 'check_outputs': 'atomic',
    'OutputAppearedError': 'atomic', 'vectorize_change': 'vectorize',
    'Feature': 'vector_io', 'FeatureStream': 'vector_io', 'write_vector': 'vector_io',
    'VECTOR_FORMATS': 'vector_io',
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f'.{_NAMES[name]}', __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
