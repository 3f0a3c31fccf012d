"""GeoJSON (RFC 7946) and GeoPackage writers (:mod:`mmrs.geo.vector_io`).

Coordinates are checked against pyproj transforms of known corners, the GeoPackage's CRS is
read back both with fiona and straight from its SQLite tables.
"""
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from rasterio.crs import CRS
from shapely.geometry import box, shape

from mmrs.geo.vector_io import Feature, FeatureStream, write_vector
from mmrs.geo.vectorize import vectorize_change

fiona = pytest.importorskip('fiona')

UTM18 = CRS.from_epsg(32618)
# A clockwise square with a hole, in UTM 18N metres (RGB.byte.tif's area).
CORNER = (102000.0, 2800000.0)


def square() -> shapely.Polygon:
    x, y = CORNER
    outer = [(x, y), (x, y + 900), (x + 900, y + 900), (x + 900, y)]  # clockwise
    return shapely.Polygon(outer, [box(x + 300, y + 300, x + 600, y + 600).exterior.coords])


def stream(crs: CRS | None = UTM18, n: int = 1) -> FeatureStream:
    feats = [Feature(shapely.affinity.translate(square(), 2000 * i),
                     {'class': 1, 'area': 720000.0, 'score': np.float32(0.5), 'name': f'f{i}'})
             for i in range(n)]
    schema = {'class': 'int', 'area': 'float', 'score': 'float', 'name': 'str'}
    return FeatureStream(feats, crs, schema)


def lonlat(x: float, y: float, crs: CRS = UTM18) -> tuple[float, float]:
    return Transformer.from_crs(ProjCRS.from_wkt(crs.to_wkt()), 'EPSG:4326',
                                always_xy=True).transform(x, y)


class TestGeoJSON:

    def test_rfc7946_lonlat_without_crs_member(self, tmp_path: Path) -> None:
        out = tmp_path / 'change.geojson'
        assert write_vector(out, stream(n=3)) == 3
        doc = json.loads(out.read_text())
        assert doc['type'] == 'FeatureCollection' and 'crs' not in doc
        assert len(doc['features']) == 3
        first = doc['features'][0]
        assert first['properties'] == {'class': 1, 'area': 720000.0, 'score': 0.5,
                                       'name': 'f0'}
        geom = shape(first['geometry'])
        lon, lat = lonlat(*CORNER)
        assert -80 < lon < -78 and 25 < lat < 26  # west of UTM 18N: lon first, not swapped
        corner = np.asarray(geom.exterior.coords)
        assert np.abs(corner - [lon, lat]).sum(axis=1).min() < 1e-9
        assert geom.exterior.is_ccw and not geom.interiors[0].is_ccw  # right-hand rule
        assert len(geom.interiors) == 1

    def test_custom_wkt_reprojects_like_its_epsg(self, geotiff_samples_root: Path,
                                                 tmp_path: Path) -> None:
        """rgb1.tif carries a custom WKT of UTM 18N: same lon/lat as EPSG:32618."""
        with rasterio.open(geotiff_samples_root / 'rgb1.tif') as src:
            custom = src.crs
        assert custom.to_epsg() is None
        out = tmp_path / 'c.geojson'
        write_vector(out, stream(crs=custom))
        coords = np.asarray(shape(json.loads(out.read_text())['features'][0]['geometry'])
                            .exterior.coords)
        assert np.abs(coords - lonlat(*CORNER)).sum(axis=1).min() < 1e-6

    def test_wgs84_input_is_not_moved(self, tmp_path: Path) -> None:
        poly = box(10.0, 50.0, 10.5, 50.25)
        out = tmp_path / 'c.geojson'
        write_vector(out, FeatureStream([Feature(poly, {})], CRS.from_epsg(4326), {}))
        got = shape(json.loads(out.read_text())['features'][0]['geometry'])
        assert got.equals_exact(poly, 0.0)

    def test_empty_collection_is_valid_json(self, tmp_path: Path) -> None:
        out = tmp_path / 'none.geojson'
        assert write_vector(out, FeatureStream([], UTM18, {})) == 0
        assert json.loads(out.read_text()) == {'type': 'FeatureCollection', 'features': []}

    def test_without_crs_is_an_error(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match='no CRS'):
            write_vector(tmp_path / 'c.geojson', stream(crs=None))
        assert list(tmp_path.iterdir()) == []


class TestGeoPackage:

    def test_source_crs_and_attributes_read_back(self, tmp_path: Path) -> None:
        out = tmp_path / 'change.gpkg'
        assert write_vector(out, stream(n=5)) == 5
        assert sorted(p.name for p in tmp_path.iterdir()) == ['change.gpkg']
        with fiona.open(out) as src:
            assert CRS.from_wkt(src.crs.to_wkt()).to_epsg() == 32618
            rows = list(src)
            assert src.schema['geometry'] == 'Polygon'
        assert len(rows) == 5
        assert dict(rows[0]['properties']) == {'class': 1, 'area': 720000.0, 'score': 0.5,
                                               'name': 'f0'}
        assert shape(rows[0]['geometry']).equals(square())  # metres, not reprojected
        with sqlite3.connect(out) as con:  # independent of fiona: the GeoPackage tables
            (srs_id, ) = con.execute("SELECT srs_id FROM gpkg_geometry_columns "
                                     "WHERE table_name = 'change'").fetchone()
            org, code, wkt = con.execute(
                'SELECT organization, organization_coordsys_id, definition FROM '
                'gpkg_spatial_ref_sys WHERE srs_id = ?', (srs_id, )).fetchone()
            assert (org.upper(), code) == ('EPSG', 32618)
            assert 'UTM zone 18N' in wkt
            (count, ) = con.execute('SELECT COUNT(*) FROM change').fetchone()
            assert count == 5

    def test_layer_name_and_multipolygon_promotion(self, tmp_path: Path) -> None:
        out = tmp_path / 'x.gpkg'
        feats = FeatureStream([Feature(square(), {})], UTM18, {}, geometry_type='MultiPolygon')
        write_vector(out, feats, layer='polygons')
        assert fiona.listlayers(out) == ['polygons']
        with fiona.open(out, layer='polygons') as src:
            assert [f['geometry']['type'] for f in src] == ['MultiPolygon']

    def test_many_features_in_batches(self, tmp_path: Path) -> None:
        out = tmp_path / 'many.gpkg'
        assert write_vector(out, stream(n=5000)) == 5000
        with fiona.open(out) as src:
            assert len(src) == 5000

    def test_end_to_end_from_a_class_raster(self, geotiff_samples_root: Path,
                                            tmp_path: Path) -> None:
        with rasterio.open(geotiff_samples_root / 'RGB.byte.tif') as src:
            profile = src.profile
            window = rasterio.windows.Window(300, 300, 100, 80)
            band = src.read(1, window=window)
            profile.update(count=1, width=100, height=80, transform=src.window_transform(window))
        cls_path = tmp_path / 'cls.tif'
        with rasterio.open(cls_path, 'w', **profile) as dst:
            dst.write((band > 60).astype(np.uint8), 1)
        expected = int((band > 60).sum())
        for name in ('change.gpkg', 'change.geojson'):
            n = write_vector(tmp_path / name, vectorize_change(cls_path, block_rows=9))
            assert n > 5
        with fiona.open(tmp_path / 'change.gpkg') as src:
            assert sum(f['properties']['pixels'] for f in src) == expected
        doc = json.loads((tmp_path / 'change.geojson').read_text())
        assert sum(f['properties']['pixels'] for f in doc['features']) == expected


class TestErrors:

    def test_existing_output_refused_then_overwritten(self, tmp_path: Path) -> None:
        for name in ('a.gpkg', 'a.geojson'):
            out = tmp_path / name
            out.write_text('old')
            with pytest.raises(FileExistsError, match=name):
                write_vector(out, stream())
            assert out.read_text() == 'old'
            write_vector(out, stream(n=2), overwrite=True)
        with fiona.open(tmp_path / 'a.gpkg') as src:
            assert len(src) == 2

    def test_unknown_suffix(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match=r"x\.shp.*'\.shp'"):
            write_vector(tmp_path / 'x.shp', stream())

    @pytest.mark.parametrize('name', ['bad.gpkg', 'bad.geojson'])
    def test_bad_feature_leaves_no_output(self, tmp_path: Path, name: str) -> None:
        good = Feature(square(), {'class': 1})
        extra = Feature(square(), {'class': 1, 'oops': 2})
        with pytest.raises(ValueError, match="'oops'"):
            write_vector(tmp_path / name, FeatureStream([good, extra], UTM18, {'class': 'int'}))
        point = Feature(shapely.Point(CORNER), {'class': 1})
        with pytest.raises(ValueError, match='Point feature in a Polygon layer'):
            write_vector(tmp_path / name, FeatureStream([good, point], UTM18, {'class': 'int'}))
        with pytest.raises(ValueError, match="type 'list'"):
            write_vector(tmp_path / name, FeatureStream([good], UTM18, {'class': 'list'}))
        assert list(tmp_path.iterdir()) == []
