"""Block-by-block georeferenced output: a tiled, compressed GeoTIFF (optionally a COG).

:class:`GeoTiffWriter` opens the output once and takes finalised windows in any order (the
stitcher hands over whole output blocks when the block size divides the tile stride, so each
block is compressed and written exactly once and GDAL's cache holds nothing). Band 1 is the
class map; with ``probability`` band 2 is a probability:

- ``'uint8'`` (default with probability): the file is uint8, classes ``0..K-1``, the
  probability stored as ``round(p * 254)`` with band scale ``1/254`` (GDAL-aware readers get
  ``p`` back), nodata ``255`` for both bands;
- ``'float32'``: the file is float32 (a GeoTIFF has one data type), classes as ``0.0, 1.0 ...``
  and ``p`` in ``[0, 1]``, nodata ``NaN``.

Without a probability band the file is uint8 with nodata 255. CRS and geotransform are the
source's (the output grid of :class:`~mmrs.geo.raster.RasterPair`). With ``cog=True`` the
streamed file is converted at the end with GDAL's COG driver (internal overviews, nearest
resampling so classes stay classes). Write into the temporary path of
:func:`mmrs.geo.atomic.atomic_output` so an interrupted run leaves nothing behind.
"""
import os
from typing import Any

import numpy as np

#: Probability band encodings.
PROBABILITY_DTYPES = ('uint8', 'float32')
#: Nodata value of uint8 outputs (classes and probabilities never take it).
UINT8_NODATA = 255
#: uint8 probability scale: stored value = round(p * PROB_SCALE).
PROB_SCALE = 254


class GeoTiffWriter:
    """Write a class map (and a probability band) window by window.

    Args:
        path: Output file (use the temporary path of ``atomic_output``).
        height, width: Output size.
        crs: rasterio CRS or ``None``.
        transform: rasterio ``Affine`` or ``None``.
        probability: ``None``, ``'uint8'`` or ``'float32'`` (see the module docstring).
        block: Block (tile) size, a multiple of 16.
        compress: GDAL compression (``'deflate'``, ``'lzw'``, ``'zstd'`` ...).
        cog: Convert to a Cloud Optimized GeoTIFF with overviews on :meth:`close`.
        descriptions: Band descriptions (class band, probability band).

    Raises:
        ValueError: Unknown ``probability`` or a block size that is not a multiple of 16.
    """

    def __init__(self, path: str | os.PathLike, height: int, width: int, crs: Any = None,
                 transform: Any = None, probability: str | None = None, block: int = 512,
                 compress: str = 'deflate', cog: bool = False,
                 descriptions: tuple[str, str] = ('change_class', 'change_probability')
                 ) -> None:
        import rasterio
        if probability not in (None, *PROBABILITY_DTYPES):
            raise ValueError(f'probability must be None or one of {PROBABILITY_DTYPES}, got '
                             f'{probability!r}')
        if block % 16 or block < 16:
            raise ValueError(f'block must be a positive multiple of 16, got {block}')
        self.path, self.cog, self.probability = str(path), cog, probability
        self.height, self.width = int(height), int(width)
        floating = probability == 'float32'
        self.dtype = np.float32 if floating else np.uint8
        self.nodata = float('nan') if floating else UINT8_NODATA
        count = 2 if probability else 1
        self._stream_path = self.path + '.stream.tif' if cog else self.path
        profile = dict(driver='GTiff', height=self.height, width=self.width, count=count,
                       dtype=self.dtype, nodata=self.nodata, tiled=True, blockxsize=block,
                       blockysize=block, compress=compress, BIGTIFF='IF_SAFER')
        if crs is not None:
            profile['crs'] = crs
        if transform is not None:
            profile['transform'] = transform
        self._dst = rasterio.open(self._stream_path, 'w', **profile)
        for i in range(count):
            self._dst.set_band_description(i + 1, descriptions[i])
        if probability == 'uint8':
            self._dst.scales = (1.0, 1.0 / PROB_SCALE)
        self.compress, self.block = compress, block

    def write(self, y: int, x: int, classes: np.ndarray, probability: np.ndarray | None = None,
              invalid: np.ndarray | None = None) -> None:
        """Write one window.

        Args:
            y, x: Top-left pixel of the window.
            classes: ``(h, w)`` integer class map.
            probability: ``(h, w)`` probabilities in ``[0, 1]`` (needed with a probability
                band).
            invalid: ``(h, w)`` bool, True where the output is nodata.
        """
        from rasterio.windows import Window
        h, w = classes.shape
        bands = [classes.astype(self.dtype)]
        if self.probability:
            if probability is None:
                raise ValueError('this writer has a probability band: pass probability')
            p = np.clip(probability, 0.0, 1.0)
            bands.append(np.rint(p * PROB_SCALE).astype(np.uint8) if self.dtype == np.uint8
                         else p.astype(np.float32))
        data = np.stack(bands)
        if invalid is not None:
            data[:, invalid] = self.nodata
        self._dst.write(data, window=Window(x, y, w, h))

    def close(self) -> None:
        """Finish the file (and convert to COG when asked)."""
        if self._dst.closed:
            return
        self._dst.close()
        if self.cog:
            from rasterio.shutil import copy as gdal_copy
            gdal_copy(self._stream_path, self.path, driver='COG', COMPRESS=self.compress.upper(),
                      BLOCKSIZE=str(self.block if self.block >= 128 else 256),
                      OVERVIEW_RESAMPLING='NEAREST', BIGTIFF='IF_SAFER')
            os.remove(self._stream_path)

    def abort(self) -> None:
        """Close without finishing (the caller discards the temporary file)."""
        if not self._dst.closed:
            self._dst.close()
        if self.cog and os.path.exists(self._stream_path):
            os.remove(self._stream_path)

    def __enter__(self) -> 'GeoTiffWriter':
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
