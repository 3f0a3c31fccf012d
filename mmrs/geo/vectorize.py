"""Polygons of changed areas from a class raster, streamed in blocks of rows.

The stitched class map of a whole scene may not fit in memory, so it is read in blocks of full
rows. In each block the 4-connected regions of every requested class are labelled and traced
with :func:`rasterio.features.shapes` in *pixel* coordinates (integer vertices, so unions
below are exact). A region that touches the bottom row of its block may continue in the next
block: the pixels of the two rows on either side of the block border are compared, and regions
of the same class facing each other across the border are merged (shapely union of the pieces).
Regions that do not reach the bottom row are finished and are yielded at once, so memory holds
one block plus the regions still open at its bottom border, never the scene. The result does
not depend on the block size: a polygon crossing any number of block borders comes out whole.

Each finished polygon is mapped to the raster's CRS with its affine transform (rotated and
sheared transforms included), optionally hole-filled and simplified, and filtered by area.
Pixels that are nodata (the band's mask: nodata value, alpha band or internal mask) never
become polygons.
"""
import os
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import rasterio
import shapely
from rasterio.crs import CRS
from rasterio.features import shapes
from rasterio.windows import Window
from scipy import ndimage
from shapely import affinity
from shapely.geometry import Polygon, shape
from shapely.geometry.base import BaseGeometry

from .vector_io import Feature, FeatureStream, orient_ccw

#: Pixels per block when ``block_rows`` is not given (64 MiB of int32 labels).
DEFAULT_BLOCK_PIXELS = 1 << 24


@dataclass
class _Region:
    """A connected region, possibly assembled from pieces in several blocks (pixel coords)."""
    value: int
    pieces: list[BaseGeometry]
    pixels: int
    prob_sum: float = 0.0
    prob_pixels: int = 0
    members: list[int] = field(default_factory=list)  # labels in the current block


def vectorize_change(class_raster_path: str | os.PathLike,
                     probability_raster_path: str | os.PathLike | None = None,
                     *,
                     classes: Sequence[int] = (1, ),
                     band: int = 1,
                     probability_band: int = 1,
                     probability_scale: float | None = None,
                     min_area: float = 0.0,
                     simplify: float | None = None,
                     fill_holes: float | None = None,
                     block_rows: int | None = None) -> FeatureStream:
    """Vectorise the pixels of ``classes`` in a class raster into polygons.

    Args:
        class_raster_path: Single-band (or ``band``-selected) integer class map, e.g. the
            stitched output of the change inferencer.
        probability_raster_path: Optional raster on the same grid whose band
            ``probability_band`` holds the probability of the predicted class; its mean over
            each polygon's pixels (nodata and NaN pixels excluded) is reported as
            ``probability``. May be the class raster itself.
        classes: Class values to vectorise; regions of different classes are separate.
        band: Band of the class raster.
        probability_band: Band of the probability raster.
        probability_scale: Factor turning stored values into [0, 1]. Default: the band's GDAL
            scale and offset when it has them (the uint8 probability band of
            :class:`~mmrs.geo.writer.GeoTiffWriter` stores ``round(p * 254)`` with scale
            ``1/254``), else ``1/max`` of an integer dtype (``1/255`` for ``uint8``), else 1.
        min_area: Drop polygons whose (final) area is below this, in map units squared
            (in m² when the CRS is geographic).
        simplify: Douglas-Peucker tolerance in map units; topology preserving for each
            polygon (it stays valid and keeps its holes), though neighbouring polygons of
            different classes may gain small gaps or overlaps. ``None``: pixel outlines.
        fill_holes: Fill holes whose area is at most this (map units squared; m² for a
            geographic CRS; ``math.inf`` fills all). Filled holes count in ``area`` but not in
            ``pixels`` or ``probability``.
        block_rows: Rows read at once (default: about 16 Mpixel per block, a multiple of the
            file's tile height).

    Returns:
        A :class:`~mmrs.geo.vector_io.FeatureStream` in the class raster's CRS (lazy: the
        raster is read while it is iterated) with properties ``class``, ``pixels`` (count of
        class pixels), ``area`` (map units squared, planar), ``area_m2`` (geodesic, only for a
        geographic CRS) and ``probability`` (only with a probability raster).

    Raises:
        FileNotFoundError / rasterio.errors.RasterioIOError: A raster cannot be opened (the
            message names it).
        ValueError: Bad arguments, or the two rasters are not on the same grid.
    """
    classes = tuple(int(c) for c in classes)
    if not classes:
        raise ValueError('vectorize_change: classes is empty')
    if (simplify is not None and simplify < 0) or min_area < 0:
        raise ValueError('vectorize_change: simplify and min_area must be non-negative')
    if fill_holes is not None and fill_holes < 0:
        raise ValueError('vectorize_change: fill_holes must be non-negative')
    with _open(class_raster_path) as src:
        _check_band(src, band, class_raster_path)
        crs, height, width = src.crs, src.height, src.width
        tile_rows = src.block_shapes[band - 1][0]
        transform = src.transform
        if np.dtype(src.dtypes[band - 1]).kind == 'c':
            raise ValueError(f'{class_raster_path}: band {band} is complex, not a class map')
    probability_offset = 0.0
    if probability_raster_path is not None:
        with _open(probability_raster_path) as prob:
            _check_band(prob, probability_band, probability_raster_path)
            _check_same_grid(class_raster_path, (crs, height, width, transform),
                             probability_raster_path, prob)
            if probability_scale is None:
                probability_scale, probability_offset = _default_scaling(prob, probability_band)
    if block_rows is None:  # whole rows of the file's tiles, so no tile is decoded twice
        block_rows = max(tile_rows, DEFAULT_BLOCK_PIXELS // width // tile_rows * tile_rows)
    if block_rows < 1:
        raise ValueError(f'vectorize_change: block_rows must be >= 1, got {block_rows}')

    geod = _geod(crs)
    schema = {'class': 'int', 'pixels': 'int', 'area': 'float'}
    if geod is not None:
        schema['area_m2'] = 'float'
    if probability_raster_path is not None:
        schema['probability'] = 'float'

    def features() -> Iterator[Feature]:
        to_map = [transform.a, transform.b, transform.d, transform.e, transform.xoff,
                  transform.yoff]
        for region in _regions(class_raster_path, probability_raster_path, band,
                               probability_band, classes, block_rows):
            geometry = affinity.affine_transform(_union(region.pieces), to_map)
            feature = _finish(geometry, region, geod, fill_holes, simplify,
                              (probability_scale, probability_offset)
                              if probability_raster_path is not None else None)
            area = feature.properties.get('area_m2', feature.properties['area'])
            if area >= min_area:
                yield feature

    return FeatureStream(features(), crs, schema, geometry_type='Polygon')


def _regions(class_path: str | os.PathLike, prob_path: str | os.PathLike | None, band: int,
             prob_band: int, classes: tuple[int, ...], block_rows: int) -> Iterator[_Region]:
    """Yield every finished region of the raster, streaming block by block."""
    with _open(class_path) as src, (_open(prob_path) if prob_path else nullcontext()) as prob:
        height, width = src.height, src.width
        open_regions: dict[int, _Region] = {}  # label in previous block's last row -> region
        prev_last: np.ndarray | None = None  # labels of the previous block's last row
        for row0 in range(0, height, block_rows):
            rows = min(block_rows, height - row0)
            window = Window(0, row0, width, rows)
            values = src.read(band, window=window)
            valid = src.read_masks(band, window=window) > 0
            if values.dtype.kind == 'f':
                valid &= np.isfinite(values)
            labels, n_labels, label_value = _label(values, valid, classes)
            regions = _block_regions(labels, n_labels, label_value, row0, prob, prob_band,
                                     window)
            if prev_last is not None:
                yield from _merge_across(open_regions, prev_last, labels[0], regions)
            last_block = row0 + rows >= height
            bottom = set() if last_block else set(np.unique(labels[-1]).tolist()) - {0}
            open_regions = {}
            for region in _distinct(regions.values()):
                if any(m in bottom for m in region.members):
                    for member in region.members:
                        if member in bottom:
                            open_regions[member] = region
                else:
                    yield region
            prev_last = labels[-1].copy()


def _label(values: np.ndarray, valid: np.ndarray,
           classes: tuple[int, ...]) -> tuple[np.ndarray, int, np.ndarray]:
    """4-connected components of each class; ``label_value[k]`` is the class of label ``k``."""
    labels = np.zeros(values.shape, dtype=np.int32)
    label_value = [0]
    for value in classes:
        component, count = ndimage.label(valid & (values == value))
        if count:
            inside = component > 0
            labels[inside] = component[inside] + (len(label_value) - 1)
            label_value.extend([value] * count)
    return labels, len(label_value) - 1, np.asarray(label_value)


def _block_regions(labels: np.ndarray, n_labels: int, label_value: np.ndarray, row0: int,
                   prob: rasterio.DatasetReader | None, prob_band: int,
                   window: Window) -> dict[int, _Region]:
    """Trace each label of one block into a region (pixel coordinates of the whole raster)."""
    if n_labels == 0:
        return {}
    pixels = np.bincount(labels.ravel(), minlength=n_labels + 1)
    prob_sum = prob_pixels = None
    if prob is not None:
        p = prob.read(prob_band, window=window).astype(np.float64)
        p_valid = (prob.read_masks(prob_band, window=window) > 0) & np.isfinite(p)
        p_labels = np.where(p_valid, labels, 0).ravel()
        prob_sum = np.bincount(p_labels, weights=np.where(p_valid, p, 0).ravel(),
                               minlength=n_labels + 1)
        prob_pixels = np.bincount(p_labels, minlength=n_labels + 1)
    offset = rasterio.Affine.translation(0, row0)
    regions = {}
    for geom, label in shapes(labels, mask=labels > 0, connectivity=4, transform=offset):
        label = int(label)
        regions[label] = _Region(
            value=int(label_value[label]), pieces=[shape(geom)], pixels=int(pixels[label]),
            prob_sum=float(prob_sum[label]) if prob_sum is not None else 0.0,
            prob_pixels=int(prob_pixels[label]) if prob_pixels is not None else 0,
            members=[label])
    return regions


def _merge_across(open_regions: dict[int, _Region], prev_last: np.ndarray,
                  first: np.ndarray, regions: dict[int, _Region]) -> Iterator[_Region]:
    """Join regions facing each other across a block border, updating ``regions`` in place.

    Two labels are joined when a pixel of the previous block's last row and the pixel below
    it in this block's first row carry labels of the same class (4-connectivity). Joining is
    transitive (a U shape joins two open regions through one piece below them). Yields the
    open regions of the previous block that nothing continues: they are finished.
    """
    parent: dict[tuple[str, int], tuple[str, int]] = {}

    def find(node: tuple[str, int]) -> tuple[str, int]:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    upper_by_id = {id(r): r for r in open_regions.values()}
    touching = (prev_last > 0) & (first > 0)
    for above, below in set(zip(prev_last[touching].tolist(), first[touching].tolist())):
        upper = open_regions[above]
        if upper.value == regions[below].value:
            parent[find(('p', id(upper)))] = find(('c', below))
    groups: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for node in [('p', key) for key in upper_by_id] + [('c', label) for label in regions]:
        groups.setdefault(find(node), []).append(node)
    for nodes in groups.values():
        if len(nodes) == 1:
            kind, key = nodes[0]
            if kind == 'p':  # an open region that does not continue: finished
                yield upper_by_id[key]
            continue
        parts = [upper_by_id[k] if kind == 'p' else regions[k] for kind, k in nodes]
        labels = sorted(k for kind, k in nodes if kind == 'c')
        merged = _Region(value=parts[0].value,
                         pieces=[piece for part in parts for piece in part.pieces],
                         pixels=sum(part.pixels for part in parts),
                         prob_sum=sum(part.prob_sum for part in parts),
                         prob_pixels=sum(part.prob_pixels for part in parts),
                         members=labels)
        for label in labels:
            regions[label] = merged


def _distinct(regions) -> list[_Region]:
    seen: dict[int, _Region] = {}
    for region in regions:
        seen.setdefault(id(region), region)
    return list(seen.values())


def _union(pieces: list[BaseGeometry]) -> BaseGeometry:
    """Dissolve a region's pieces; drop the collinear vertices left where borders were."""
    if len(pieces) == 1:
        return pieces[0]
    # Integer pixel coordinates: the union is exact and the removed vertices exactly collinear.
    return shapely.simplify(shapely.union_all(pieces), 0.0, preserve_topology=True)


def _finish(geometry: BaseGeometry, region: _Region, geod, fill_holes: float | None,
            simplify: float | None, scaling: tuple[float, float] | None) -> Feature:
    """Hole filling, simplification and properties of one polygon in map coordinates."""
    if fill_holes is not None:
        geometry = _fill_holes(geometry, fill_holes, geod)
    if simplify:
        geometry = shapely.simplify(geometry, simplify, preserve_topology=True)
    props = {'class': region.value, 'pixels': region.pixels, 'area': float(geometry.area)}
    if geod is not None:
        props['area_m2'] = _geodesic_area(geometry, geod)
    if scaling is not None:  # the mean of a linear rescaling is the rescaled mean
        scale, offset = scaling
        props['probability'] = (region.prob_sum / region.prob_pixels * scale + offset
                                if region.prob_pixels else None)
    return Feature(geometry, props)


def _fill_holes(geometry: BaseGeometry, max_area: float, geod) -> BaseGeometry:
    def area(ring) -> float:
        hole = Polygon(ring)
        return _geodesic_area(hole, geod) if geod is not None else hole.area

    def fill(polygon: Polygon) -> Polygon:
        keep = [r for r in polygon.interiors if area(r) > max_area]
        return Polygon(polygon.exterior, keep)

    if isinstance(geometry, Polygon):
        return fill(geometry)
    return shapely.MultiPolygon([fill(p) for p in geometry.geoms])


def _geod(crs: CRS | None):
    """A pyproj ``Geod`` on the CRS's ellipsoid when the CRS is geographic, else ``None``."""
    if crs is None or not crs.is_geographic:
        return None
    from pyproj import CRS as ProjCRS
    return ProjCRS.from_user_input(crs.to_wkt()).get_geod()


def _geodesic_area(geometry: BaseGeometry, geod) -> float:
    # pyproj sums signed ring areas: exteriors CCW (positive), holes CW (subtracted).
    return abs(float(geod.geometry_area_perimeter(orient_ccw(geometry))[0]))


def _default_scaling(src: rasterio.DatasetReader, band: int) -> tuple[float, float]:
    """``(scale, offset)`` mapping stored probability values to [0, 1] (see the docstring)."""
    scale, offset = float(src.scales[band - 1]), float(src.offsets[band - 1])
    if (scale, offset) != (1.0, 0.0):
        return scale, offset
    dtype = np.dtype(src.dtypes[band - 1])
    return (1.0 / np.iinfo(dtype).max if dtype.kind in 'iu' else 1.0), 0.0


def _open(path: str | os.PathLike) -> rasterio.DatasetReader:
    if not os.path.isfile(path):
        raise FileNotFoundError(f'raster {path} does not exist')
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise rasterio.errors.RasterioIOError(f'cannot read raster {path}: {exc}') from exc


def _check_band(src: rasterio.DatasetReader, band: int, path: str | os.PathLike) -> None:
    if not 1 <= band <= src.count:
        raise ValueError(f'{path}: band {band} requested but the raster has {src.count} '
                         'band(s) (bands count from 1)')


def _check_same_grid(class_path: str | os.PathLike, grid: tuple, prob_path: str | os.PathLike,
                     prob: rasterio.DatasetReader) -> None:
    crs, height, width, transform = grid
    problems = []
    if (prob.height, prob.width) != (height, width):
        problems.append(f'size {prob.width}x{prob.height} vs {width}x{height}')
    if not prob.transform.almost_equals(transform):
        problems.append(f'transform {tuple(prob.transform)[:6]} vs {tuple(transform)[:6]}')
    if prob.crs != crs:
        problems.append(f'CRS {prob.crs} vs {crs}')
    if problems:
        raise ValueError(f'probability raster {prob_path} is not on the grid of class raster '
                         f'{class_path}: ' + '; '.join(problems))
