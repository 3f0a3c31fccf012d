"""Nodata is used (labels ignored where either date is nodata) and pairs must line up.

GeoTIFFs are written here with rasterio (real CRS and geotransform); the real Landsat
``RGB.byte.tif`` (nodata collar, value 0) checks the whole path on real data. Expected masks
are written out by hand from the arrays each test writes.
"""
import re

import cv2
import numpy as np
import pytest
import rasterio
from affine import Affine

from mmrs.datasets import BaseChangeDataset
from mmrs.datasets.transforms import LoadBitemporalImages, LoadChangeAnnotations

UTM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4500000.0)  # 10 m pixels, UTM 33N
FAST = dict(serialize_data=False)


def write_tif(path, arr: np.ndarray, crs='EPSG:32633', transform=UTM, nodata=None) -> str:
    """Write ``(H, W)`` or ``(H, W, C)`` as a GeoTIFF."""
    arr = arr[..., None] if arr.ndim == 2 else arr
    h, w, c = arr.shape
    with rasterio.open(path, 'w', driver='GTiff', height=h, width=w, count=c, dtype=arr.dtype,
                       crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(np.moveaxis(arr, -1, 0))
    return str(path)


def load(paths, **kwargs) -> dict:
    return LoadBitemporalImages(**kwargs)(dict(img_path=[str(p) for p in paths]))


@pytest.fixture
def int16_pair(tmp_path):
    """4x5x2 int16 pair, nodata -9999: date 1 row 0, date 2 column 4, one half-valid pixel."""
    a = np.full((4, 5, 2), 100, np.int16)
    b = np.full((4, 5, 2), 200, np.int16)
    a[0] = -9999  # whole first row nodata in date 1
    b[:, 4] = -9999  # last column nodata in date 2
    a[2, 1, 0] = -9999  # only one band nodata: the pixel stays valid (GDAL convention)
    paths = [write_tif(tmp_path / 'a.tif', a, nodata=-9999),
             write_tif(tmp_path / 'b.tif', b, nodata=-9999)]
    want = np.zeros((4, 5), bool)
    want[0] = True
    want[:, 4] = True
    return paths, want


def all_changed_label(tmp_path, shape, name='label.tif') -> str:
    return write_tif(tmp_path / name, np.full(shape, 255, np.uint8))


class TestNodataMask:

    def test_union_of_both_dates_all_bands(self, int16_pair):
        paths, want = int16_pair
        res = load(paths)
        np.testing.assert_array_equal(res['nodata_mask'], want)
        assert res['nodata_mask'].dtype == bool
        assert 'nodata_mask' not in res.get('seg_fields', [])

    def test_labels_ignored_where_nodata(self, int16_pair, tmp_path):
        paths, want = int16_pair
        res = load(paths)
        res['seg_map_path'] = all_changed_label(tmp_path, (4, 5))
        gt = LoadChangeAnnotations()(res)['gt_seg_map']
        np.testing.assert_array_equal(gt, np.where(want, 255, 1))

    def test_ignore_nodata_off_keeps_labels(self, int16_pair, tmp_path):
        paths, _ = int16_pair
        res = load(paths)
        res.update(seg_map_path=all_changed_label(tmp_path, (4, 5)), ignore_nodata=False)
        assert (LoadChangeAnnotations()(res)['gt_seg_map'] == 1).all()
        res = load(paths)  # the transform's own argument wins over the dataset option
        res.update(seg_map_path=all_changed_label(tmp_path, (4, 5)), ignore_nodata=True)
        out = LoadChangeAnnotations(ignore_nodata=False)(res)
        assert (out['gt_seg_map'] == 1).all()

    def test_float_nan_counts_as_nodata(self, tmp_path):
        a = np.ones((3, 4, 2), np.float32)
        a[0, 0] = np.nan
        b = np.ones((3, 4, 2), np.float32)
        b[2, 3] = -1.0
        b[1, 1] = np.nan  # NaN also counts when the nodata tag is a number
        paths = [write_tif(tmp_path / 'a.tif', a, nodata=float('nan')),
                 write_tif(tmp_path / 'b.tif', b, nodata=-1.0)]
        want = np.zeros((3, 4), bool)
        want[0, 0] = want[2, 3] = want[1, 1] = True
        np.testing.assert_array_equal(load(paths)['nodata_mask'], want)

    def test_real_float_nan_raster(self, geotiff_samples_root):
        path = geotiff_samples_root / 'float_nan.tif'
        res = load([path, path])
        with rasterio.open(path) as src:
            want = np.isnan(src.read(1))
        assert want.any() and not want.all()
        np.testing.assert_array_equal(res['nodata_mask'], want)

    def test_no_nodata_value_no_mask(self, tmp_path):
        arr = np.zeros((3, 3, 1), np.uint8)  # zeros, but no nodata tag: valid data
        paths = [write_tif(tmp_path / f'{k}.tif', arr) for k in 'ab']
        res = load(paths)
        res['seg_map_path'] = all_changed_label(tmp_path, (3, 3))
        assert 'nodata_mask' not in res
        assert (LoadChangeAnnotations()(res)['gt_seg_map'] == 1).all()

    def test_configured_nodata_on_png(self, tmp_path):
        img = np.full((4, 4, 3), 50, np.uint8)
        img[:, 0] = 0  # black border (PNG has no nodata tag)
        paths = []
        for k in 'ab':
            paths.append(str(tmp_path / f'{k}.png'))
            cv2.imwrite(paths[-1], img)
        label = str(tmp_path / 'l.png')
        cv2.imwrite(label, np.full((4, 4), 255, np.uint8))
        plain = LoadChangeAnnotations()(dict(load(paths), seg_map_path=label))
        assert 'nodata_mask' not in plain and (plain['gt_seg_map'] == 1).all()
        # dataset option (results['nodata']): not georeferenced, but a value was configured
        res = LoadBitemporalImages()(dict(img_path=paths, nodata=0.0, seg_map_path=label))
        gt = LoadChangeAnnotations()(res)['gt_seg_map']
        np.testing.assert_array_equal(gt[:, 0], 255)
        np.testing.assert_array_equal(gt[:, 1:], 1)
        # the loader's own argument does the same
        res = load(paths, nodata=0)
        np.testing.assert_array_equal(res['nodata_mask'][:, 0], True)

    def test_semantic_maps_ignored_too(self, int16_pair, tmp_path):
        paths, want = int16_pair
        res = load(paths)
        res['seg_map_path_from'] = write_tif(tmp_path / 'f.tif', np.full((4, 5), 2, np.uint8))
        res['seg_map_path_to'] = write_tif(tmp_path / 't.tif', np.full((4, 5), 1, np.uint8))
        res['semantic_classes'] = ('unchanged', 'a', 'b')
        out = LoadChangeAnnotations(semantic=True)(res)
        np.testing.assert_array_equal(out['gt_seg_map_from'], np.where(want, 255, 2))
        np.testing.assert_array_equal(out['gt_seg_map_to'], np.where(want, 255, 1))
        np.testing.assert_array_equal(out['gt_seg_map'], np.where(want, 255, 1))

    def test_dataset_end_to_end(self, tmp_path):
        """The labels a model is trained and scored on carry the ignore at nodata pixels."""
        a = np.full((6, 6, 3), 40, np.uint16)
        a[:2, :2] = 0  # nodata corner in date 1
        for sub in ('A', 'B', 'label'):
            (tmp_path / sub).mkdir()
        write_tif(tmp_path / 'A' / 't.tif', a, nodata=0)
        write_tif(tmp_path / 'B' / 't.tif', np.full((6, 6, 3), 60, np.uint16), nodata=0)
        label = np.zeros((6, 6), np.uint8)
        label[:, 3:] = 255
        write_tif(tmp_path / 'label' / 't.tif', label)
        pipeline = [dict(type='LoadBitemporalImages'), dict(type='LoadChangeAnnotations'),
                    dict(type='PackChangeInputs')]
        ds = BaseChangeDataset(str(tmp_path), img_suffix='.tif', seg_map_suffix='.tif',
                               pipeline=pipeline, **FAST)
        gt = ds[0]['data_samples'].gt_sem_seg.data[0].numpy()
        want = (label // 255).astype(np.int64)
        want[:2, :2] = 255
        np.testing.assert_array_equal(gt, want)
        ds = BaseChangeDataset(str(tmp_path), img_suffix='.tif', seg_map_suffix='.tif',
                               pipeline=pipeline, ignore_nodata=False, **FAST)
        np.testing.assert_array_equal(ds[0]['data_samples'].gt_sem_seg.data[0].numpy(),
                                      label // 255)

    def test_real_landsat_nodata_collar(self, geotiff_samples_root, tmp_path):
        path = geotiff_samples_root / 'RGB.byte.tif'
        with rasterio.open(path) as src:
            bands = src.read()
            assert src.nodata == 0
        collar = (bands == 0).all(axis=0)  # GDAL: nodata where every band is nodata
        assert 0.2 < collar.mean() < 0.5
        res = load([path, path])
        res['seg_map_path'] = all_changed_label(tmp_path, collar.shape)
        gt = LoadChangeAnnotations()(res)['gt_seg_map']
        np.testing.assert_array_equal(gt == 255, collar)
        np.testing.assert_array_equal(gt[~collar], 1)


class TestAlignment:

    def pair(self, tmp_path, t2=UTM, crs2='EPSG:32633', shape=(6, 8)) -> list[str]:
        arr = np.zeros(shape + (1, ), np.uint8)
        return [write_tif(tmp_path / 'a.tif', arr),
                write_tif(tmp_path / 'b.tif', arr, crs=crs2, transform=t2)]

    def assert_refused(self, paths, *phrases, **kwargs):
        with pytest.raises(ValueError) as err:
            load(paths, **kwargs)
        msg = str(err.value)
        assert paths[0] in msg and paths[1] in msg
        for phrase in phrases:
            assert re.search(phrase, msg), (phrase, msg)

    def test_same_grid_passes(self, tmp_path):
        res = load(self.pair(tmp_path))
        assert res['geo_meta'][0]['transform'] == res['geo_meta'][1]['transform']

    def test_crs_mismatch(self, tmp_path):
        self.assert_refused(self.pair(tmp_path, crs2='EPSG:32632'),
                            r'CRS: EPSG:32633 vs EPSG:32632')

    def test_pixel_size_mismatch(self, tmp_path):
        t2 = Affine(10.5, 0.0, 500000.0, 0.0, -10.5, 4500000.0)
        self.assert_refused(self.pair(tmp_path, t2),
                            r'pixel size: \(10, -10\) vs \(10\.5, -10\.5\)')

    def test_origin_shift_and_tolerance(self, tmp_path):
        t2 = Affine(10.0, 0.0, 500010.0, 0.0, -10.0, 4499980.0)  # +1 column, +2 rows
        paths = self.pair(tmp_path, t2)
        self.assert_refused(paths, r'origin: date 2 is shifted by \(1, 2\) pixels')
        load(paths, align_tolerance=2.5)  # accepted when the user allows 2.5 px
        load(paths, check_alignment=False)

    def test_float_rounding_is_accepted(self, tmp_path):
        t2 = Affine(10.0 + 1e-9, 0.0, 500000.0 + 1e-6, 0.0, -10.0, 4500000.0)
        load(self.pair(tmp_path, t2))

    def test_pixel_size_drift_counts_across_the_tile(self, tmp_path):
        # 1e-3 relative pixel-size error: 0.008 px at 8 columns (ok), 1 px at 1000 (refused)
        t2 = Affine(10.01, 0.0, 500000.0, 0.0, -10.0, 4500000.0)
        load(self.pair(tmp_path, t2, shape=(2, 8)))
        self.assert_refused(self.pair(tmp_path, t2, shape=(2, 1000)), 'pixel size')

    def test_rotated_grid(self, geotiff_samples_root, tmp_path):
        rotated = str(geotiff_samples_root / 'rotated.tif')
        load([rotated, rotated])
        with rasterio.open(rotated) as src:
            arr = np.moveaxis(src.read(), 0, -1)
            t = src.transform
        north_up = write_tif(tmp_path / 'north_up.tif', arr, crs=None,
                             transform=Affine(t.a, 0.0, t.c, 0.0, t.e, t.f))
        self.assert_refused([rotated, north_up], 'rotation')

    def test_not_georeferenced_date_is_not_compared(self, tmp_path):
        geo = write_tif(tmp_path / 'a.tif', np.zeros((6, 8, 3), np.uint8))
        png = str(tmp_path / 'b.png')
        cv2.imwrite(png, np.zeros((6, 8, 3), np.uint8))
        res = load([geo, png])
        assert res['geo_meta'][1]['transform'] is None

    def test_negative_tolerance_refused(self):
        with pytest.raises(ValueError, match='align_tolerance'):
            LoadBitemporalImages(align_tolerance=-1)
