"""Windowed reading of one georeferenced raster (single-image segmentation, detection).

:func:`open_single` opens a file with rasterio (never reading the scene) and returns a
:class:`SingleRaster` with the same grid interface as :class:`~mmrs.geo.raster.RasterPair`
(``height``, ``width``, ``crs``, ``transform``, ``pixel_area()``, ``geo_meta()``, ``close()``),
so :class:`mmrs.apis.TiledInferencer`, the stitcher and the writer serve it unchanged. The
output grid is the file's own grid.

:meth:`SingleRaster.read_window` returns a window as an ``(h, w, C)`` array (dtype kept) and its
invalid mask by the dataset loader's nodata rule (:func:`mmrs.datasets.geo.nodata_mask`: all
bands equal the nodata value, NaN for floats) plus, for files with a per-dataset mask (an alpha
band or an internal mask), the pixels that mask marks as empty.
"""
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmrs.geo.raster import _check_band_selection, _georeferenced, open_raster, parse_bands


@dataclass
class SingleRaster:
    """One opened raster for windowed reading (see the module docstring).

    Attributes:
        path: The file.
        dataset: The open rasterio dataset.
        height, width: Grid size.
        crs: CRS or ``None``.
        transform: Geotransform or ``None`` (not georeferenced).
        bands: 1-based bands read.
        nodata: Nodata value applied (``None``: none).
        mask_band: Whether GDAL's dataset mask (alpha / internal mask) marks invalid pixels.
    """

    path: str
    dataset: Any
    height: int
    width: int
    crs: Any
    transform: Any
    bands: list[int]
    nodata: float | None
    mask_band: bool = False

    #: Always ``False`` (the file is read on its own grid); kept for the pair interface.
    reprojected = False

    @property
    def paths(self) -> tuple[str]:
        """``(path,)``, the files read (as ``RasterPair.paths``)."""
        return (self.path,)

    @property
    def dtype(self) -> np.dtype:
        """Data type of the bands read."""
        return np.dtype(self.dataset.dtypes[self.bands[0] - 1])

    def geo_meta(self, y: int = 0, x: int = 0) -> dict:
        """``geo_meta`` (crs WKT, transform, nodata, count, dtype) of a window at ``(y, x)``."""
        transform = None
        if self.transform is not None:
            from rasterio.transform import Affine
            transform = tuple(float(v) for v in tuple(
                self.transform @ Affine.translation(x, y))[:6])
        return dict(crs=self.crs.to_wkt() if self.crs is not None else None,
                    transform=transform, nodata=self.nodata, count=len(self.bands),
                    dtype=str(self.dtype))

    def read_window(self, y: int, x: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """A window and its invalid mask.

        Returns:
            ``(img, invalid)``: an ``(h, w, C)`` array (the file's dtype) and an ``(h, w)``
            bool mask, True where the pixel is nodata.

        Raises:
            OSError: The window cannot be decoded (the message names the file).
        """
        from rasterio.errors import RasterioError
        from rasterio.windows import Window

        from mmrs.datasets.geo import nodata_mask
        window = Window(x, y, w, h)
        try:
            arr = self.dataset.read(self.bands, window=window)
            gdal_mask = self.dataset.dataset_mask(window=window) if self.mask_band else None
        except RasterioError as err:
            raise OSError(f'cannot read window (row {y}, col {x}, {h}x{w}) of '
                          f'{self.path!r} (corrupt or truncated file?): {err}') from err
        img = np.ascontiguousarray(np.moveaxis(arr, 0, -1))
        invalid = nodata_mask(img, self.nodata)
        invalid = np.zeros((h, w), bool) if invalid is None else invalid
        if gdal_mask is not None:
            invalid |= gdal_mask == 0
        return img, invalid

    def read(self, y: int, x: int, h: int, w: int) -> tuple[np.ndarray, None, np.ndarray]:
        """``(img, None, invalid)``: :meth:`read_window` in the tiling loop's
        ``(date 1, date 2, invalid)`` shape, with no second date."""
        img, invalid = self.read_window(y, x, h, w)
        return img, None, invalid

    def pixel_area(self) -> float | None:
        """Area of one pixel in map units squared (``None`` without a transform)."""
        if self.transform is None:
            return None
        return abs(self.transform.a * self.transform.e - self.transform.b * self.transform.d)

    def close(self) -> None:
        """Close the dataset."""
        self.dataset.close()

    def __enter__(self) -> 'SingleRaster':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_single(path: str, bands: Sequence[int] | str | None = None,
                nodata: float | None = None) -> SingleRaster:
    """Open one raster for windowed reading.

    Args:
        path: Any file GDAL opens (GeoTIFF/COG expected).
        bands: 1-based bands to read; default all (an alpha band, when the file has one, is
            then left out and used as the validity mask instead).
        nodata: Nodata value overriding the file's tag.

    Raises:
        FileNotFoundError, OSError: Missing or unreadable file (the message names it).
        ValueError: A band selection the file does not have.
    """
    from rasterio.enums import ColorInterp, MaskFlags
    path = str(path)
    ds = open_raster(path)
    try:
        selection = parse_bands(bands)
        alpha = [i + 1 for i, c in enumerate(ds.colorinterp) if c == ColorInterp.alpha]
        if selection is None and alpha and ds.count > len(alpha):
            selection = [b for b in range(1, ds.count + 1) if b not in alpha]
        sel = _check_band_selection(selection, ds, path)
        value = float(nodata) if nodata is not None else (
            float(ds.nodata) if ds.nodata is not None else None)
        flags = ds.mask_flag_enums[0] if ds.count else []
        mask_band = nodata is None and (MaskFlags.per_dataset in flags
                                        or MaskFlags.alpha in flags)
        geo = _georeferenced(ds)
        return SingleRaster(path=path, dataset=ds, height=ds.height, width=ds.width,
                            crs=ds.crs if geo else None, transform=ds.transform if geo else None,
                            bands=sel, nodata=value, mask_band=mask_band)
    except BaseException:
        ds.close()
        raise
