"""Streaming vectorisation of class rasters (:func:`mmrs.geo.vectorize.vectorize_change`).

Oracles are independent of the block-and-merge code: shapely boxes and pixel quads built from
the affine transform, pixel counts times the pixel area, whole-image
:func:`rasterio.features.shapes`, pyproj geodesic areas of known corners and numpy means.
"""
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from rasterio.features import shapes
from rasterio.transform import Affine, from_origin
from shapely.geometry import box, shape

from mmrs.geo.vectorize import vectorize_change

PIXEL = 10.0
UTM = from_origin(500000.0, 4000000.0, PIXEL, PIXEL)


def write_raster(path: Path, array: np.ndarray, transform: Affine = UTM,
                 crs: str | None = 'EPSG:32633', nodata: float | None = None) -> Path:
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    with rasterio.open(path, 'w', driver='GTiff', height=array.shape[1], width=array.shape[2],
                       count=array.shape[0], dtype=array.dtype, crs=crs, transform=transform,
                       nodata=nodata) as dst:
        dst.write(array)
    return path


def pixel_box(rows: slice, cols: slice, transform: Affine = UTM) -> shapely.Polygon:
    """The map-space box covering ``array[rows, cols]`` (axis-aligned transforms only)."""
    x0, y0 = transform @ (cols.start, rows.start)
    x1, y1 = transform @ (cols.stop, rows.stop)
    return box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def pixel_quads(mask: np.ndarray, transform: Affine) -> shapely.Geometry:
    """Union of every masked pixel's quadrilateral, corners mapped by ``transform``."""
    quads = [shapely.Polygon([transform @ (c, r), transform @ (c + 1, r),
                              transform @ (c + 1, r + 1), transform @ (c, r + 1)])
             for r, c in zip(*np.nonzero(mask))]
    return shapely.union_all(quads)


def run(path: Path, **kwargs) -> list:
    return list(vectorize_change(path, **kwargs))


class TestShapes:

    def test_rectangles_per_class(self, tmp_path: Path) -> None:
        cls = np.zeros((20, 30), np.uint8)
        cls[2:6, 3:10] = 1
        cls[10:18, 12:29] = 1
        cls[2:5, 20:25] = 2
        feats = run(write_raster(tmp_path / 'c.tif', cls), classes=(1, 2), block_rows=4)
        expected = {(1, pixel_box(slice(2, 6), slice(3, 10)).wkt),
                    (1, pixel_box(slice(10, 18), slice(12, 29)).wkt),
                    (2, pixel_box(slice(2, 5), slice(20, 25)).wkt)}
        assert len(feats) == 3
        for f in feats:
            match = [w for c, w in expected if c == f.properties['class']
                     and shapely.from_wkt(w).equals(f.geometry)]
            assert len(match) == 1, f.geometry.wkt
            assert f.properties['area'] == pytest.approx(shapely.from_wkt(match[0]).area)
            assert f.properties['pixels'] * PIXEL**2 == pytest.approx(f.properties['area'])
            assert 'area_m2' not in f.properties  # projected CRS: area is already in m²

    def test_ring_with_hole(self, tmp_path: Path) -> None:
        cls = np.zeros((16, 16), np.uint8)
        cls[2:12, 3:13] = 1
        cls[5:9, 6:10] = 0
        (f, ) = run(write_raster(tmp_path / 'c.tif', cls), block_rows=3)
        oracle = pixel_box(slice(2, 12), slice(3, 13)).difference(
            pixel_box(slice(5, 9), slice(6, 10)))
        assert f.geometry.geom_type == 'Polygon' and len(f.geometry.interiors) == 1
        assert f.geometry.equals(oracle)
        assert f.properties['area'] == pytest.approx((100 - 16) * PIXEL**2)

    @pytest.mark.parametrize('block_rows', [1, 2, 3, 5, 7, 100])
    def test_shapes_crossing_blocks_come_out_whole(self, tmp_path: Path,
                                                   block_rows: int) -> None:
        cls = np.zeros((14, 24), np.uint8)
        cls[1:10, 1:3] = 1  # L: a bar down through several blocks and a foot
        cls[8:10, 3:7] = 1
        cls[1:12, 9] = 1  # U: two arms joined at the bottom
        cls[1:12, 13] = 1
        cls[11, 9:14] = 1
        cls[2, 16:22] = 1  # inverted U: one top, two legs
        cls[2:13, 16] = 1
        cls[2:13, 21] = 1
        feats = run(write_raster(tmp_path / 'c.tif', cls), block_rows=block_rows)
        assert len(feats) == 3
        assert all(f.geometry.geom_type == 'Polygon' and f.geometry.is_valid for f in feats)
        by_x = sorted(feats, key=lambda f: f.geometry.bounds[0])
        l_shape = cls.copy()
        l_shape[:, 8:] = 0
        assert by_x[0].properties['pixels'] == l_shape.sum()
        assert by_x[0].geometry.area == pytest.approx(l_shape.sum() * PIXEL**2)
        assert by_x[0].geometry.equals(
            pixel_box(slice(1, 10), slice(1, 3)).union(pixel_box(slice(8, 10), slice(3, 7))))
        assert sum(f.properties['pixels'] for f in feats) == cls.sum()
        assert sum(f.properties['area'] for f in feats) == pytest.approx(cls.sum() * PIXEL**2)

    def test_reads_only_blocks_of_rows(self, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
        cls = np.zeros((40, 12), np.uint8)
        cls[2:38, 3:6] = 1  # one polygon across ten blocks
        path = write_raster(tmp_path / 'c.tif', cls)
        heights = []
        original = rasterio.io.DatasetReader.read

        def read(self, *args, window=None, **kwargs):
            assert window is not None, 'a whole-raster read'
            heights.append(window.height)
            return original(self, *args, window=window, **kwargs)

        monkeypatch.setattr(rasterio.io.DatasetReader, 'read', read)
        feats = run(path, probability_raster_path=path, block_rows=4)
        assert len(feats) == 1 and feats[0].properties['pixels'] == 108
        assert max(heights) == 4 and len(heights) == 2 * 10  # class + probability reads

    def test_real_scene_matches_whole_image_shapes(self, geotiff_samples_root: Path,
                                                   tmp_path: Path) -> None:
        """Streaming in 3-row blocks gives exactly the polygons of one whole-image pass."""
        with rasterio.open(geotiff_samples_root / 'RGB.byte.tif') as src:
            window = rasterio.windows.Window(250, 200, 160, 120)
            band = src.read(1, window=window)
            valid = src.read_masks(1, window=window) > 0
            transform = src.window_transform(window)
            crs = src.crs
        cls = np.where(valid, (band > 60).astype(np.uint8), 255).astype(np.uint8)
        path = write_raster(tmp_path / 'c.tif', cls, transform, crs.to_wkt(), nodata=255)
        feats = run(path, block_rows=3)
        oracle = [shape(g) for g, _ in shapes(cls, mask=cls == 1, transform=transform)]
        assert len(feats) == len(oracle) > 20
        tree = shapely.STRtree(oracle)
        matched = set()
        for f in feats:
            near = tree.query(f.geometry.representative_point(), predicate='intersects')
            (index, ) = [i for i in near if shapely.equals_exact(
                shapely.normalize(oracle[i]), shapely.normalize(f.geometry), 1e-6)]
            matched.add(int(index))
        assert len(matched) == len(oracle)

    def test_nodata_pixels_never_become_polygons(self, geotiff_samples_root: Path,
                                                 tmp_path: Path) -> None:
        # RGB.byte.tif's collar is value 0 = nodata: asking for class 0 yields nothing.
        assert run(geotiff_samples_root / 'RGB.byte.tif', classes=(0, ), block_rows=100) == []
        cls = np.ones((8, 8), np.uint8)
        cls[:, 4:] = 2
        feats = run(write_raster(tmp_path / 'c.tif', cls, nodata=1), classes=(1, 2))
        assert [f.properties['class'] for f in feats] == [2]
        assert feats[0].geometry.equals(pixel_box(slice(0, 8), slice(4, 8)))

    def test_all_nodata_scene(self, geotiff_samples_root: Path) -> None:
        assert run(geotiff_samples_root / 'all-nodata.tif', classes=(0, 1), block_rows=600) == []

    def test_rotated_transform(self, geotiff_samples_root: Path, tmp_path: Path) -> None:
        with rasterio.open(geotiff_samples_root / 'rotated.tif') as src:
            values, transform = src.read(1), src.transform
        assert transform.b != 0 and transform.d != 0  # really rotated
        mask = ((values % 10 < 4) & (values >= 30)) | (values >= 120)  # an L
        cls = mask.astype(np.uint8)
        (f, ) = run(write_raster(tmp_path / 'c.tif', cls, transform, crs=None), block_rows=4)
        assert f.geometry.equals_exact(pixel_quads(mask, transform), 1e-6) or \
            f.geometry.symmetric_difference(pixel_quads(mask, transform)).area < 1e-6
        assert f.properties['area'] == pytest.approx(mask.sum() * abs(transform.determinant))


class TestAttributes:

    def test_geographic_area_in_m2(self, tmp_path: Path) -> None:
        from pyproj import Geod

        transform = from_origin(10.0, 50.0, 0.01, 0.01)  # lon/lat degrees
        cls = np.zeros((40, 40), np.uint8)
        cls[10:30, 5:25] = 1
        (f, ) = run(write_raster(tmp_path / 'g.tif', cls, transform, 'EPSG:4326'))
        lon0, lat0 = transform @ (5, 10)
        lon1, lat1 = transform @ (25, 30)
        oracle, _ = Geod(ellps='WGS84').polygon_area_perimeter([lon0, lon1, lon1, lon0],
                                                               [lat0, lat0, lat1, lat1])
        assert f.properties['area_m2'] == pytest.approx(abs(oracle), rel=1e-9)
        # Sanity against the authalic-sphere formula R² Δλ (sin φ1 - sin φ0), ~0.2° x 0.2°.
        sphere = 6371007.2**2 * math.radians(0.2) * (
            math.sin(math.radians(lat0)) - math.sin(math.radians(lat1)))
        assert f.properties['area_m2'] == pytest.approx(sphere, rel=5e-3)
        assert f.properties['area'] == pytest.approx(0.2 * 0.2)  # square degrees
        path = tmp_path / 'g.tif'  # min_area is in m² too, not in square degrees
        assert len(run(path, min_area=0.99 * abs(oracle))) == 1
        assert run(path, min_area=1.01 * abs(oracle)) == []

    def test_mean_probability(self, tmp_path: Path) -> None:
        rng = np.random.default_rng(0)
        cls = np.zeros((20, 20), np.uint8)
        cls[1:15, 1:4] = 1  # L crossing blocks
        cls[12:15, 4:9] = 1
        cls[3:6, 12:18] = 1
        prob = rng.random((20, 20)).astype(np.float32)
        prob[2, 2] = np.nan  # excluded from the mean
        c_path = write_raster(tmp_path / 'c.tif', cls)
        p_path = write_raster(tmp_path / 'p.tif', prob)
        feats = sorted(run(c_path, probability_raster_path=p_path, block_rows=4),
                       key=lambda f: f.geometry.bounds[0])
        l_mask = cls.astype(bool).copy()
        l_mask[:, 10:] = False
        rect = cls.astype(bool) & ~l_mask
        assert feats[0].properties['probability'] == pytest.approx(np.nanmean(prob[l_mask]))
        assert feats[1].properties['probability'] == pytest.approx(prob[rect].mean())

    def test_uint8_probability_with_nodata(self, tmp_path: Path) -> None:
        cls = np.zeros((6, 6), np.uint8)
        cls[1:5, 1:5] = 1
        prob = np.full((6, 6), 200, np.uint8)
        prob[1, 1:5] = 0  # nodata
        p_path = write_raster(tmp_path / 'p.tif', prob, nodata=0)
        (f, ) = run(write_raster(tmp_path / 'c.tif', cls), probability_raster_path=p_path)
        assert f.properties['probability'] == pytest.approx(200 / 255)
        assert f.properties['pixels'] == 16

    def test_gdal_band_scale_is_honoured(self, tmp_path: Path) -> None:
        cls = np.ones((4, 4), np.uint8)
        path = tmp_path / 'p.tif'
        with rasterio.open(path, 'w', driver='GTiff', height=4, width=4, count=2,
                           dtype='uint8', crs='EPSG:32633', transform=UTM) as dst:
            dst.write(np.stack([cls, np.full((4, 4), 127, np.uint8)]))
            dst.scales = (1.0, 1 / 254)
        (f, ) = run(path, probability_raster_path=path, probability_band=2)
        assert f.properties['probability'] == pytest.approx(0.5)
        (f, ) = run(path, probability_raster_path=path, probability_band=2,
                    probability_scale=0.01)
        assert f.properties['probability'] == pytest.approx(1.27)

    @pytest.mark.parametrize('dtype', ['uint8', 'float32'])
    def test_inferencer_output_with_probability_band(self, tmp_path: Path, dtype: str) -> None:
        """The stitched GeoTIFF of :class:`~mmrs.geo.writer.GeoTiffWriter` vectorises as is."""
        from mmrs.geo.writer import GeoTiffWriter

        rng = np.random.default_rng(1)
        cls = np.zeros((32, 32), np.uint8)
        cls[4:20, 4:12] = 1
        prob = rng.random((32, 32))
        invalid = np.zeros((32, 32), bool)
        invalid[4:6, 4:12] = True  # nodata rows inside the changed block
        path = tmp_path / 'change.tif'
        with GeoTiffWriter(path, 32, 32, 'EPSG:32633', UTM, probability=dtype,
                           block=16) as writer:
            writer.write(0, 0, cls, prob, invalid)
        (f, ) = run(path, probability_raster_path=path, probability_band=2, block_rows=5)
        inside = (cls == 1) & ~invalid
        assert f.properties['pixels'] == inside.sum()
        assert f.geometry.equals(pixel_box(slice(6, 20), slice(4, 12)))
        tol = 0.5 / 254 if dtype == 'uint8' else 1e-6
        assert f.properties['probability'] == pytest.approx(prob[inside].mean(), abs=tol)

    def test_min_area(self, tmp_path: Path) -> None:
        cls = np.zeros((10, 10), np.uint8)
        cls[0:2, 0:2] = 1  # 4 px
        cls[5:9, 5:10] = 1  # 20 px
        path = write_raster(tmp_path / 'c.tif', cls)
        assert len(run(path)) == 2
        (f, ) = run(path, min_area=10 * PIXEL**2)
        assert f.properties['pixels'] == 20
        assert run(path, min_area=21 * PIXEL**2) == []

    def test_simplify_keeps_valid_polygons(self, tmp_path: Path) -> None:
        cls = np.tril(np.ones((30, 30), np.uint8))  # a staircase triangle
        path = write_raster(tmp_path / 'c.tif', cls)
        (raw, ) = run(path)
        (simple, ) = run(path, simplify=1.5 * PIXEL)
        count = shapely.get_num_coordinates
        assert count(simple.geometry) < 10 < count(raw.geometry)
        assert simple.geometry.is_valid and simple.geometry.geom_type == 'Polygon'
        assert simple.properties['area'] == pytest.approx(raw.properties['area'], rel=0.05)
        assert simple.properties['area'] == pytest.approx(simple.geometry.area)
        assert simple.properties['pixels'] == raw.properties['pixels']

    def test_fill_holes_by_area(self, tmp_path: Path) -> None:
        cls = np.ones((20, 20), np.uint8)
        cls[3:5, 3:5] = 0  # 4 px hole
        cls[10:14, 10:14] = 0  # 16 px hole
        path = write_raster(tmp_path / 'c.tif', cls)
        (kept, ) = run(path)
        (small, ) = run(path, fill_holes=5 * PIXEL**2)
        (every, ) = run(path, fill_holes=math.inf)
        assert len(kept.geometry.interiors) == 2
        assert len(small.geometry.interiors) == 1
        assert shapely.Polygon(small.geometry.interiors[0]).area == pytest.approx(16 * PIXEL**2)
        assert len(every.geometry.interiors) == 0
        assert every.properties['area'] == pytest.approx(400 * PIXEL**2)
        assert small.properties['area'] == pytest.approx((400 - 16) * PIXEL**2)
        assert every.properties['pixels'] == 400 - 20


class TestErrors:

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match='nope.tif'):
            vectorize_change(tmp_path / 'nope.tif')

    def test_corrupt_file(self, tmp_path: Path) -> None:
        bad = tmp_path / 'bad.tif'
        bad.write_bytes(b'not a tiff at all')
        with pytest.raises(rasterio.errors.RasterioIOError, match='bad.tif'):
            vectorize_change(bad)

    def test_probability_on_another_grid(self, tmp_path: Path) -> None:
        c_path = write_raster(tmp_path / 'c.tif', np.ones((8, 8), np.uint8))
        p_path = write_raster(tmp_path / 'p.tif', np.ones((8, 9), np.float32))
        with pytest.raises(ValueError, match=r'p\.tif.*c\.tif.*size'):
            vectorize_change(c_path, p_path)

    def test_bad_band_and_arguments(self, tmp_path: Path) -> None:
        path = write_raster(tmp_path / 'c.tif', np.ones((4, 4), np.uint8))
        with pytest.raises(ValueError, match='band 2'):
            vectorize_change(path, band=2)
        with pytest.raises(ValueError, match='classes'):
            vectorize_change(path, classes=())
        with pytest.raises(ValueError, match='block_rows'):
            vectorize_change(path, block_rows=0)
