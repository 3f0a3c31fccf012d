"""Streaming writers for vector outputs: GeoJSON (RFC 7946) and GeoPackage.

Model-agnostic: a feature is a shapely geometry plus a flat ``properties`` dict, so change
polygons (:func:`mmrs.geo.vectorize.vectorize_change`), rotated detections (polygon, class,
score) and tile footprints all go through the same two writers. Features are consumed one by
one (GeoPackage rows are committed in batches), so a scene with millions of polygons is never
held in memory, and every file is written through :func:`~mmrs.geo.atomic.atomic_output`.

Coordinate reference systems:

- **GeoJSON** follows RFC 7946: coordinates are *always* WGS 84 longitude/latitude
  (EPSG:4326, x = longitude) and the file carries no ``crs`` member. Features in another CRS
  are reprojected vertex by vertex with pyproj (no densification: edges of pixel-sized
  polygons are short) and a note saying so is logged. Polygon rings are oriented by the
  right-hand rule (exterior counter-clockwise). Use GeoPackage to keep the source CRS.
- **GeoPackage** keeps the source CRS (its WKT is stored in ``gpkg_spatial_ref_sys``), written
  with fiona (OGR's GPKG driver).
"""
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from rasterio.crs import CRS
from shapely.geometry import MultiPolygon, Polygon, mapping
from shapely.geometry.polygon import orient
from shapely.geometry.base import BaseGeometry

from .atomic import atomic_output

logger = logging.getLogger(__name__)

#: Suffix (lower case) -> format name understood by :func:`write_vector`.
VECTOR_FORMATS = {'.geojson': 'geojson', '.json': 'geojson', '.gpkg': 'gpkg'}

#: Property types a schema may name (the fiona/OGR field types used for them).
PROPERTY_TYPES = ('int', 'float', 'str', 'bool')

_GPKG_BATCH = 2048  # rows per transaction: one per row is ~100x slower in SQLite


@dataclass(frozen=True)
class Feature:
    """One vector feature.

    Attributes:
        geometry: A shapely geometry in the CRS of the collection it belongs to.
        properties: Flat attributes (``int``, ``float``, ``str``, ``bool`` or ``None``).
    """
    geometry: BaseGeometry
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class FeatureStream:
    """Features together with what a writer must know before the first one arrives.

    Attributes:
        features: The features (any iterable; consumed once).
        crs: CRS of the geometries, ``None`` when unknown (GeoJSON output then fails).
        schema: Property name -> type (one of :data:`PROPERTY_TYPES`), in column order.
        geometry_type: OGR geometry type of every feature (``'Polygon'``, ``'Point'``, ...;
            ``'Unknown'`` for mixed types). ``Polygon`` features may go into a
            ``MultiPolygon`` layer (and likewise for points and lines): they are promoted.
    """
    features: Iterable[Feature]
    crs: CRS | None
    schema: dict[str, str]
    geometry_type: str = 'Polygon'

    def __iter__(self) -> Iterator[Feature]:
        return iter(self.features)


def write_vector(path: str | os.PathLike, features: FeatureStream,
                 overwrite: bool = False, layer: str | None = None) -> int:
    """Write features to ``path``; the format follows the suffix (see :data:`VECTOR_FORMATS`).

    Args:
        path: Output file (``.geojson``/``.json`` or ``.gpkg``).
        features: The features and their CRS, schema and geometry type.
        overwrite: Whether an existing file may be replaced.
        layer: GeoPackage layer name (default: the file stem); ignored for GeoJSON.

    Returns:
        The number of features written.

    Raises:
        ValueError: Unknown suffix, bad schema, a feature that does not fit the schema or the
            geometry type, or GeoJSON requested for features without a CRS.
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    fmt = vector_format(path)
    _check_schema(features.schema, path)
    if fmt == 'geojson':
        return write_geojson(path, features, overwrite=overwrite)
    return write_geopackage(path, features, overwrite=overwrite, layer=layer)


def vector_format(path: str | os.PathLike) -> str:
    """Format name for ``path``'s suffix; ``ValueError`` naming the file if unsupported."""
    suffix = Path(path).suffix.lower()
    if suffix not in VECTOR_FORMATS:
        raise ValueError(f'cannot write vector output {path}: unsupported suffix '
                         f'{suffix!r} (use one of {sorted(VECTOR_FORMATS)})')
    return VECTOR_FORMATS[suffix]


def write_geojson(path: str | os.PathLike, features: FeatureStream,
                  overwrite: bool = False) -> int:
    """Write an RFC 7946 FeatureCollection in EPSG:4326 lon/lat (see the module docstring).

    Returns:
        The number of features written.
    """
    if features.crs is None:
        raise ValueError(f'cannot write {path}: GeoJSON (RFC 7946) needs WGS 84 coordinates '
                         'but the features have no CRS to reproject from; write a .gpkg')
    to_lonlat = _lonlat_transform(features.crs)
    if to_lonlat is not None:
        logger.info('%s: coordinates reprojected from %s to EPSG:4326 lon/lat as RFC 7946 '
                    'requires; write a .gpkg to keep the source CRS', path,
                    _crs_name(features.crs))
    count = 0
    with atomic_output(path, overwrite) as tmp, open(tmp, 'w', encoding='utf-8') as out:
        out.write('{"type": "FeatureCollection", "features": [')
        for feature in features:
            props = _checked_properties(feature, features, path)
            geometry = _checked_geometry(feature, features, path)
            if to_lonlat is not None:
                geometry = shapely.transform(geometry, to_lonlat)
            geometry = orient_ccw(geometry)
            record = {'type': 'Feature', 'geometry': mapping(geometry), 'properties': props}
            out.write(',\n' if count else '\n')
            out.write(json.dumps(record, allow_nan=False))
            count += 1
        out.write('\n]}\n')
    return count


def write_geopackage(path: str | os.PathLike, features: FeatureStream,
                     overwrite: bool = False, layer: str | None = None) -> int:
    """Write a GeoPackage layer in the features' own CRS (fiona, batched transactions).

    Returns:
        The number of features written.
    """
    try:
        import fiona
    except ImportError as exc:  # a runtime requirement, but say what to do if it is missing
        raise ImportError(f'writing {path} needs fiona (GeoPackage via OGR): pip install '
                          'fiona') from exc
    schema = {'geometry': features.geometry_type, 'properties': dict(features.schema)}
    crs_wkt = features.crs.to_wkt() if features.crs is not None else ''
    count = 0
    with atomic_output(path, overwrite) as tmp:
        with fiona.open(tmp, 'w', driver='GPKG', schema=schema, crs_wkt=crs_wkt,
                        layer=layer or Path(path).stem) as dst:
            batch: list[dict[str, Any]] = []
            for feature in features:
                batch.append({'geometry': mapping(_checked_geometry(feature, features, path)),
                              'properties': _checked_properties(feature, features, path)})
                if len(batch) == _GPKG_BATCH:
                    dst.writerecords(batch)
                    count, batch = count + len(batch), []
            if batch:
                dst.writerecords(batch)
                count += len(batch)
    return count


def orient_ccw(geometry: BaseGeometry) -> BaseGeometry:
    """Exterior rings counter-clockwise, holes clockwise (RFC 7946's right-hand rule)."""
    if hasattr(shapely, 'orient_polygons'):  # shapely >= 2.1
        return shapely.orient_polygons(geometry, exterior_cw=False)
    if isinstance(geometry, Polygon):
        return orient(geometry, 1.0)
    if isinstance(geometry, MultiPolygon):
        return MultiPolygon([orient(p, 1.0) for p in geometry.geoms])
    return geometry


def _lonlat_transform(crs: CRS) -> Callable[[np.ndarray], np.ndarray] | None:
    """Vectorised ``(N, 2)`` source -> lon/lat function, or ``None`` if already EPSG:4326."""
    from pyproj import CRS as ProjCRS
    from pyproj import Transformer

    source = ProjCRS.from_user_input(crs.to_wkt())
    wgs84 = ProjCRS.from_epsg(4326)
    if source.equals(wgs84, ignore_axis_order=True):
        return None
    transformer = Transformer.from_crs(source, wgs84, always_xy=True)

    def to_lonlat(xy: np.ndarray) -> np.ndarray:
        lon, lat = transformer.transform(xy[:, 0], xy[:, 1], errcheck=True)
        return np.column_stack([lon, lat])

    return to_lonlat


def _crs_name(crs: CRS) -> str:
    epsg = crs.to_epsg()
    return f'EPSG:{epsg}' if epsg is not None else 'the source CRS (custom WKT)'


def _check_schema(schema: Mapping[str, str], path: str | os.PathLike) -> None:
    for name, kind in schema.items():
        if kind not in PROPERTY_TYPES:
            raise ValueError(f'cannot write {path}: property {name!r} has type {kind!r}; '
                             f'use one of {PROPERTY_TYPES}')


def _checked_properties(feature: Feature, stream: FeatureStream,
                        path: str | os.PathLike) -> dict[str, Any]:
    """The feature's properties in schema order as plain Python values."""
    extra = set(feature.properties) - set(stream.schema)
    if extra:
        raise ValueError(f'cannot write {path}: feature properties {sorted(extra)} are not '
                         f'in the schema {list(stream.schema)}')
    props = {}
    for name in stream.schema:
        value = feature.properties.get(name)
        props[name] = value.item() if isinstance(value, np.generic) else value
    return props


_PROMOTABLE = {'Polygon': 'MultiPolygon', 'Point': 'MultiPoint', 'LineString': 'MultiLineString'}


def _checked_geometry(feature: Feature, stream: FeatureStream,
                      path: str | os.PathLike) -> BaseGeometry:
    geometry = feature.geometry
    kind = geometry.geom_type
    declared = stream.geometry_type
    if declared in ('Unknown', kind):
        return geometry
    if _PROMOTABLE.get(kind) == declared:
        return getattr(shapely, declared)([geometry])
    raise ValueError(f'cannot write {path}: a {kind} feature in a {declared} layer (declare '
                     "geometry_type='Unknown' for mixed geometries)")
