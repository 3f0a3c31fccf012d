"""Windowed reading of a bitemporal GeoTIFF pair on one common pixel grid.

:func:`open_pair` opens both dates with rasterio (never reading the scene), checks that they
can be compared and fixes the output grid: date 1's grid, cut to the area both dates cover.

- Same CRS and pixel size, origins a whole number of pixels apart: the pair is read as is and
  only the common window is predicted (partial overlap). The comparison reuses the rules of
  :func:`mmrs.datasets.geo.grid_differences` (what the dataset loader checks on tiles).
- Anything else (another CRS, pixel size, rotation, a sub-pixel shift) is a ``ValueError``
  naming both files and what differs, unless ``reproject=True``: date 2 is then warped onto
  date 1's grid with a rasterio ``WarpedVRT`` (resampling selectable) and the common area is
  date 2's footprint inside date 1.
- Footprints that do not overlap are a ``ValueError`` naming both files and their bounds.
- Non-georeferenced pairs (plain TIFF) must have the same size.

:meth:`RasterPair.read` returns both dates of a window as ``(h, w, C)`` arrays (dtype kept, as
:func:`mmrs.datasets.io.read_raster` gives them) plus the window's *invalid* mask: nodata in
either date by the loader's rule (:func:`mmrs.datasets.geo.nodata_mask`: all bands equal the
nodata value, NaN for floats) or outside date 2's footprint after warping.
"""
import os.path as osp
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: ``resampling`` names accepted by :func:`open_pair` (rasterio ``Resampling`` members).
RESAMPLINGS = ('nearest', 'bilinear', 'cubic', 'cubic_spline', 'lanczos', 'average', 'mode')


def parse_bands(text: str | Sequence[int] | None) -> list[int] | None:
    """``'1,2,3'`` (or a sequence) -> ``[1, 2, 3]``; ``None`` / ``''`` -> ``None``.

    Raises:
        ValueError: Not a comma-separated list of positive integers.
    """
    if text is None or text == '':
        return None
    items = text.split(',') if isinstance(text, str) else list(text)
    try:
        bands = [int(str(b).strip()) for b in items]
    except ValueError:
        raise ValueError(f'bands must be comma-separated 1-based band numbers such as '
                         f'"1,2,3", got {text!r}') from None
    if not bands or min(bands) < 1:
        raise ValueError(f'band numbers are 1-based, got {text!r}')
    return bands


def open_raster(path: str) -> Any:
    """Open ``path`` with rasterio; errors name the file.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        OSError: GDAL cannot open it (corrupt, truncated header, not a raster).
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
    if '://' not in path and not osp.isfile(path):
        raise FileNotFoundError(f'raster file not found: {path!r}')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioIOError as err:
        raise OSError(f'cannot read raster {path!r} (corrupt or not a raster): {err}') from err


def _georeferenced(ds: Any) -> bool:
    return ds.crs is not None or not ds.transform.is_identity


def _meta(ds: Any, transform: Any = None) -> dict:
    t = ds.transform if transform is None else transform
    geo = _georeferenced(ds)
    return dict(crs=ds.crs.to_wkt() if ds.crs is not None else None,
                transform=tuple(float(v) for v in tuple(t)[:6]) if geo else None,
                nodata=float(ds.nodata) if ds.nodata is not None else None,
                count=int(ds.count), dtype=str(ds.dtypes[0]))


def _bounds_text(ds: Any) -> str:
    b = ds.bounds
    return f'({b.left:.6g}, {b.bottom:.6g}, {b.right:.6g}, {b.top:.6g})'


@dataclass
class RasterPair:
    """Two opened dates on one output grid (see the module docstring).

    Attributes:
        paths: The two files.
        height, width: Output grid size (the common area).
        crs: Output CRS (date 1's) or ``None``.
        transform: Output geotransform (date 1's, moved to the common window) or ``None``.
        bands: 1-based bands read from each date.
        nodata: Nodata value applied per date (``None``: none).
        offsets: ``(row, col)`` of the output grid's origin in each source's pixel grid.
        reprojected: Whether date 2 is read through a ``WarpedVRT``.
    """

    paths: tuple[str, str]
    datasets: tuple[Any, Any]
    height: int
    width: int
    crs: Any
    transform: Any
    bands: list[int]
    nodata: tuple[float | None, float | None]
    offsets: tuple[tuple[int, int], tuple[int, int]]
    reprojected: bool = False
    alpha_band: int | None = None
    _owned: list = field(default_factory=list)

    @property
    def dtype(self) -> np.dtype:
        """Result dtype of stacking both dates (as ``PackChangeInputs`` stacks them)."""
        return np.result_type(*(np.dtype(ds.dtypes[0]) for ds in self.datasets))

    def geo_meta(self, y: int = 0, x: int = 0) -> list[dict]:
        """``geo_meta`` of a window starting at ``(y, x)`` of the output grid, per date."""
        metas = []
        for i in range(2):
            transform = None
            if self.transform is not None:
                from rasterio.transform import Affine
                transform = tuple(float(v) for v in tuple(
                    self.transform @ Affine.translation(x, y))[:6])
            metas.append(dict(crs=self.crs.to_wkt() if self.crs is not None else None,
                              transform=transform, nodata=self.nodata[i],
                              count=len(self.bands), dtype=str(self.datasets[i].dtypes[0])))
        return metas

    def _read(self, i: int, y: int, x: int, h: int, w: int,
              indexes: list[int]) -> np.ndarray:
        from rasterio.errors import RasterioError
        from rasterio.windows import Window
        oy, ox = self.offsets[i]
        try:
            return self.datasets[i].read(indexes, window=Window(x + ox, y + oy, w, h))
        except RasterioError as err:
            raise OSError(f'cannot read window (row {y + oy}, col {x + ox}, {h}x{w}) of '
                          f'date {i + 1} {self.paths[i]!r} (corrupt or truncated file?): '
                          f'{err}') from err

    def read(self, y: int, x: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Both dates of an output window and its invalid mask.

        Returns:
            ``(img1, img2, invalid)``: two ``(h, w, C)`` arrays (source dtypes) and an
            ``(h, w)`` bool mask, True where either date is nodata or date 2 has no data.
        """
        from mmrs.datasets.geo import nodata_mask
        imgs, invalid = [], np.zeros((h, w), bool)
        for i in range(2):
            arr = np.moveaxis(self._read(i, y, x, h, w, self.bands), 0, -1)
            mask = nodata_mask(arr, self.nodata[i])
            if mask is not None:
                invalid |= mask
            imgs.append(np.ascontiguousarray(arr))
        if self.alpha_band is not None:
            invalid |= self._read(1, y, x, h, w, [self.alpha_band])[0] == 0
        return imgs[0], imgs[1], invalid

    def pixel_area(self) -> float | None:
        """Area of one output pixel in map units squared (``None`` without a transform)."""
        if self.transform is None:
            return None
        return abs(self.transform.a * self.transform.e - self.transform.b * self.transform.d)

    def close(self) -> None:
        """Close the datasets (and the warped view)."""
        for ds in (*self.datasets, *self._owned):  # a warped view before its source
            try:
                ds.close()
            except Exception:  # noqa: BLE001  (already closed)
                pass

    def __enter__(self) -> 'RasterPair':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _check_band_selection(bands: list[int] | None, ds: Any, path: str) -> list[int]:
    if bands is None:
        return list(range(1, ds.count + 1))
    bad = [b for b in bands if not 1 <= b <= ds.count]
    if bad:
        raise ValueError(f'{path!r} has {ds.count} band(s); invalid 1-based band selection '
                         f'{bands} (bad: {bad})')
    return list(bands)


def _clip_window(rect: tuple[float, float, float, float], height: int, width: int,
                 paths: Sequence[str], ds1: Any, ds2: Any) -> tuple[int, int, int, int]:
    """``(row0, col0, row1, col1)`` of a date-1 pixel rectangle clipped to date 1."""
    r0, c0, r1, c1 = rect
    r0, c0 = max(0, int(np.floor(r0 + 1e-6))), max(0, int(np.floor(c0 + 1e-6)))
    r1, c1 = min(height, int(np.ceil(r1 - 1e-6))), min(width, int(np.ceil(c1 - 1e-6)))
    if r1 <= r0 or c1 <= c0:
        raise ValueError(
            f'the footprints do not overlap: date 1 {paths[0]!r} covers {_bounds_text(ds1)} '
            f'and date 2 {paths[1]!r} covers {_bounds_text(ds2)} (left, bottom, right, top '
            f'in their CRS); there is no common area to predict')
    return r0, c0, r1, c1


def _footprint_in(ds1: Any, ds2: Any) -> tuple[float, float, float, float]:
    """Bounding box of date 2's footprint in date-1 pixel coordinates (rows, cols)."""
    from rasterio.warp import transform as warp_transform
    n = 33
    t = np.linspace(0, 1, n)
    h, w = ds2.height, ds2.width
    cols = np.concatenate([t * w, np.full(n, w), t[::-1] * w, np.zeros(n)])
    rows = np.concatenate([np.zeros(n), t * h, np.full(n, h), t[::-1] * h])
    xs, ys = ds2.transform @ (cols, rows)
    if ds2.crs != ds1.crs:
        xs, ys = warp_transform(ds2.crs, ds1.crs, list(xs), list(ys))
    c, r = ~ds1.transform @ (np.asarray(xs), np.asarray(ys))
    c, r = np.asarray(c), np.asarray(r)
    ok = np.isfinite(c) & np.isfinite(r)
    if not ok.any():
        return 0.0, 0.0, 0.0, 0.0
    return r[ok].min(), c[ok].min(), r[ok].max(), c[ok].max()


def _misaligned(paths: Sequence[str], diffs: list[str], t1: Any, t2: Any) -> ValueError:
    return ValueError(
        f'bitemporal images are not aligned: date 1 {paths[0]!r} and date 2 {paths[1]!r} '
        f'differ in {"; ".join(diffs)} (transforms {tuple(t1)[:6]} vs {tuple(t2)[:6]}). '
        'Pass --reproject (reproject=True) to warp date 2 onto the grid of date 1.')


def open_pair(t1: str, t2: str, bands: Sequence[int] | None = None, reproject: bool = False,
              resampling: str = 'bilinear', nodata: float | None = None,
              tolerance: float = 0.01) -> RasterPair:
    """Open a bitemporal pair for windowed reading on a common grid.

    Args:
        t1, t2: Date 1 and date 2 files (anything GDAL opens; GeoTIFF/COG expected).
        bands: 1-based bands to read from both dates; default all.
        reproject: Warp date 2 onto date 1's grid when the grids differ.
        resampling: Resampling of the warp, one of :data:`RESAMPLINGS`.
        nodata: Nodata value of both dates, overriding the files' tags.
        tolerance: Largest accepted grid misplacement, in pixels.

    Raises:
        FileNotFoundError, OSError: A file is missing or unreadable (message names it).
        ValueError: Band counts or selections, grids (without ``reproject``) or footprints
            do not fit; the message names both files and what differs.
    """
    from rasterio.enums import Resampling
    from rasterio.transform import Affine
    from rasterio.vrt import WarpedVRT
    if resampling not in RESAMPLINGS:
        raise ValueError(f'resampling must be one of {RESAMPLINGS}, got {resampling!r}')
    paths = (str(t1), str(t2))
    ds1 = open_raster(paths[0])
    try:
        ds2 = open_raster(paths[1])
    except BaseException:
        ds1.close()
        raise
    try:
        return _make_pair(paths, ds1, ds2, parse_bands(bands), reproject,
                          Resampling[resampling], nodata, tolerance, Affine, WarpedVRT)
    except BaseException:
        ds1.close()
        ds2.close()
        raise


def _make_pair(paths, ds1, ds2, bands, reproject, resampling, nodata, tolerance, Affine,
               WarpedVRT) -> RasterPair:
    sel = _check_band_selection(bands, ds1, paths[0])
    _check_band_selection(bands, ds2, paths[1])
    if bands is None and ds1.count != ds2.count:
        raise ValueError(f'bitemporal images differ in band count: date 1 {paths[0]!r} has '
                         f'{ds1.count}, date 2 {paths[1]!r} has {ds2.count}; select common '
                         'bands with --bands')
    nd = tuple(float(nodata) if nodata is not None else
               (float(ds.nodata) if ds.nodata is not None else None) for ds in (ds1, ds2))
    geo1, geo2 = _georeferenced(ds1), _georeferenced(ds2)
    common = dict(paths=paths, bands=sel, nodata=nd)
    if not geo1 and not geo2:
        if ds1.shape != ds2.shape:
            raise ValueError(f'bitemporal images differ in size: date 1 {paths[0]!r} is '
                             f'{ds1.height}x{ds1.width}, date 2 {paths[1]!r} is '
                             f'{ds2.height}x{ds2.width} (H x W) and neither is georeferenced')
        return RasterPair(datasets=(ds1, ds2), height=ds1.height, width=ds1.width, crs=None,
                          transform=None, offsets=((0, 0), (0, 0)), **common)
    if geo1 != geo2:
        which, other = (paths[1], paths[0]) if geo1 else (paths[0], paths[1])
        raise ValueError(f'{which!r} is not georeferenced but {other!r} is; cannot place '
                         'the two dates on one grid')
    from mmrs.datasets.geo import grid_differences  # the dataset loader's grid rules
    m1, m2 = _meta(ds1), _meta(ds2)
    if not reproject:
        rel = ~ds1.transform @ ds2.transform  # date-2 pixel -> date-1 pixel
        ky, kx = int(round(rel.f)), int(round(rel.c))
        shifted = dict(m2, transform=tuple(ds2.transform @ Affine.translation(-kx, -ky))[:6])
        size = (max(ds1.height, ds2.height), max(ds1.width, ds2.width))
        if grid_differences(m1, shifted, size, tolerance):
            diffs = grid_differences(m1, m2, size, tolerance) or \
                grid_differences(m1, shifted, size, tolerance)
            raise _misaligned(paths, diffs, ds1.transform, ds2.transform)
        r0, c0, r1, c1 = _clip_window((ky, kx, ky + ds2.height, kx + ds2.width),
                                      ds1.height, ds1.width, paths, ds1, ds2)
        return RasterPair(datasets=(ds1, ds2), height=r1 - r0, width=c1 - c0, crs=ds1.crs,
                          transform=ds1.transform @ Affine.translation(c0, r0),
                          offsets=((r0, c0), (r0 - ky, c0 - kx)), **common)
    if ds1.crs is None or ds2.crs is None:
        raise ValueError(f'--reproject needs a CRS on both dates; {paths[0]!r}: '
                         f'{ds1.crs}, {paths[1]!r}: {ds2.crs}')
    r0, c0, r1, c1 = _clip_window(_footprint_in(ds1, ds2), ds1.height, ds1.width, paths,
                                  ds1, ds2)
    options = dict(crs=ds1.crs, transform=ds1.transform, width=ds1.width, height=ds1.height,
                   resampling=resampling)
    alpha = None
    if nd[1] is not None:
        options.update(src_nodata=nd[1], nodata=nd[1])
    else:
        options.update(add_alpha=True)
        alpha = ds2.count + 1
    vrt = WarpedVRT(ds2, **options)
    return RasterPair(datasets=(ds1, vrt), height=r1 - r0, width=c1 - c0, crs=ds1.crs,
                      transform=ds1.transform @ Affine.translation(c0, r0),
                      offsets=((r0, c0), (r0, c0)), reprojected=True, alpha_band=alpha,
                      _owned=[ds2], **common)
