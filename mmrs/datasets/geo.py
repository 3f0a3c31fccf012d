"""Nodata masks and the alignment check of a bitemporal pair (pure numpy on ``geo_meta``).

Nodata convention (GDAL's dataset mask for a nodata value): a pixel is nodata when *all* its
bands equal the nodata value; a pixel with at least one valid band is valid. For float
images NaN also counts as nodata whenever a nodata value applies (NaN never equals itself,
so a NaN nodata tag is matched with ``isnan``).

Alignment: two georeferenced dates must share their CRS and their pixel grid. The grids are
compared where it matters, in pixels: every corner of the date-2 tile is mapped to date-1
pixel coordinates, and the pair is accepted when no corner moves by more than ``tolerance``
pixels (so a tiny float difference in the pixel size of a large tile still counts).
"""
from collections.abc import Sequence

import numpy as np


def nodata_mask(img: np.ndarray, nodata: float | None) -> np.ndarray | None:
    """``(H, W)`` bool, True where every band of ``img`` is nodata; ``None`` without a value.

    Args:
        img: ``(H, W)`` or ``(H, W, C)`` image of any dtype.
        nodata: The nodata value (``nan`` allowed) or ``None`` when none applies.
    """
    if nodata is None:
        return None
    if img.ndim == 2:
        img = img[..., None]
    floating = img.dtype.kind in 'fc'
    if np.isnan(nodata):
        hit = np.isnan(img) if floating else np.zeros(img.shape, bool)
    else:
        hit = img == nodata
        if floating:
            hit |= np.isnan(img)
    return hit.all(axis=-1)


def pair_nodata_mask(imgs: Sequence[np.ndarray],
                     nodata: Sequence[float | None]) -> np.ndarray | None:
    """Union of the per-date nodata masks, or ``None`` when no date has a nodata value."""
    masks = [nodata_mask(img, value) for img, value in zip(imgs, nodata)]
    masks = [m for m in masks if m is not None]
    if not masks:
        return None
    out = masks[0].copy()
    for m in masks[1:]:
        out |= m
    return out


def is_georeferenced(meta: dict | None) -> bool:
    """Whether a ``geo_meta`` dict carries a CRS or a geotransform."""
    return bool(meta) and (meta.get('crs') is not None or meta.get('transform') is not None)


def _crs_equal(wkt1: str, wkt2: str) -> bool:
    if wkt1 == wkt2:
        return True
    from rasterio.crs import CRS  # only georeferenced (rasterio-read) pairs get here
    return CRS.from_wkt(wkt1) == CRS.from_wkt(wkt2)


def _crs_name(wkt: str) -> str:
    from rasterio.crs import CRS
    crs = CRS.from_wkt(wkt)
    epsg = crs.to_epsg()
    return f'EPSG:{epsg}' if epsg else wkt[:60] + ('...' if len(wkt) > 60 else '')


def _matrix(t: Sequence[float]) -> np.ndarray:
    a, b, c, d, e, f = (float(v) for v in t[:6])
    return np.array([[a, b, c], [d, e, f], [0.0, 0.0, 1.0]])


def grid_differences(meta1: dict, meta2: dict, shape: tuple[int, int],
                     tolerance: float) -> list[str]:
    """What differs between the georeference of two dates of size ``shape`` = ``(H, W)``.

    Returns an empty list when they line up (same CRS, no corner of the tile off by more
    than ``tolerance`` pixels), else one phrase per difference (CRS, pixel size /
    orientation, origin). Only call it when both dates are georeferenced.
    """
    diffs = []
    crs1, crs2 = meta1.get('crs'), meta2.get('crs')
    if (crs1 is None) != (crs2 is None):
        which = 1 if crs1 is None else 2
        diffs.append(f'CRS: date {which} has none')
    elif crs1 is not None and not _crs_equal(crs1, crs2):
        diffs.append(f'CRS: {_crs_name(crs1)} vs {_crs_name(crs2)}')
    t1, t2 = meta1.get('transform'), meta2.get('transform')
    if (t1 is None) != (t2 is None):
        which = 1 if t1 is None else 2
        diffs.append(f'geotransform: date {which} has none')
        return diffs
    if t1 is None:
        return diffs
    m1, m2 = _matrix(t1), _matrix(t2)
    if abs(np.linalg.det(m1[:2, :2])) < 1e-300:
        return diffs + [f'geotransform: date 1 transform {tuple(t1)} is degenerate']
    rel = np.linalg.inv(m1) @ m2  # date-2 pixel -> date-1 pixel
    h, w = shape
    corners = np.array([[0, w, 0, w], [0, 0, h, h]], float)
    linear_drift = np.abs((rel[:2, :2] - np.eye(2)) @ corners).max()
    if linear_drift > tolerance:
        a1, b1, _, d1, e1, _ = t1[:6]
        a2, b2, _, d2, e2, _ = t2[:6]
        if b1 == d1 == b2 == d2 == 0:
            diffs.append(f'pixel size: ({a1:g}, {e1:g}) vs ({a2:g}, {e2:g}) (drifts '
                         f'{linear_drift:.3g} px across the tile)')
        else:
            diffs.append(f'pixel size / rotation (a, b, d, e): ({a1:g}, {b1:g}, {d1:g}, '
                         f'{e1:g}) vs ({a2:g}, {b2:g}, {d2:g}, {e2:g}) (drifts '
                         f'{linear_drift:.3g} px across the tile)')
    shift = rel[:2, 2]
    if np.abs(shift).max() > tolerance:
        diffs.append(f'origin: date 2 is shifted by ({shift[0]:.4g}, {shift[1]:.4g}) pixels '
                     f'(columns, rows) from date 1')
    return diffs


def check_pair_alignment(metas: Sequence[dict], paths: Sequence[str], shape: tuple[int, int],
                         tolerance: float = 0.01) -> None:
    """Raise when two georeferenced dates do not share one CRS and pixel grid.

    Pairs where a date is not georeferenced (PNG/JPG, plain TIFF) are not checked: there is
    nothing to compare.

    Args:
        metas: The two ``geo_meta`` dicts.
        paths: The two file paths, named in the error.
        shape: ``(H, W)`` of the images (equal for both dates).
        tolerance: Largest accepted misplacement of a tile corner, in pixels.

    Raises:
        ValueError: Naming both files, what differs and both transforms.
    """
    if not (is_georeferenced(metas[0]) and is_georeferenced(metas[1])):
        return
    diffs = grid_differences(metas[0], metas[1], shape, tolerance)
    if diffs:
        raise ValueError(
            f'bitemporal images are not aligned: date 1 {paths[0]!r} and date 2 {paths[1]!r} '
            f'differ in {"; ".join(diffs)} (tolerance {tolerance:g} px; transforms '
            f'{metas[0].get("transform")} vs {metas[1].get("transform")}). Resample one '
            'date onto the grid of the other, or raise align_tolerance of '
            'LoadBitemporalImages if the difference is acceptable.')
