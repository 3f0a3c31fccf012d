"""LoadBitemporalImages / LoadChangeAnnotations: GeoTIFF metadata, band handling, bad inputs."""
import re

import cv2
import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from affine import Affine

from mmrs.datasets.transforms import (LoadBitemporalImages, LoadChangeAnnotations,
                                      PackChangeInputs, binarize_change_label, rgb_to_index)

TRANSFORM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4500000.0)  # UTM 33N, 10 m pixels


def write_tif(path, arr: np.ndarray, crs='EPSG:32633', nodata=None, transform=TRANSFORM):
    """Write an ``(H, W, C)`` array as a GeoTIFF."""
    h, w, c = arr.shape
    with rasterio.open(path, 'w', driver='GTiff', height=h, width=w, count=c,
                       dtype=arr.dtype, crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(np.moveaxis(arr, -1, 0))
    return str(path)


def write_png(path, arr: np.ndarray):
    """Write an RGB(A) or single-channel array (converted to OpenCV's BGR)."""
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = arr[..., [2, 1, 0, 3][:arr.shape[2]]]
    assert cv2.imwrite(str(path), arr)
    return str(path)


def load(paths, **kwargs) -> dict:
    return LoadBitemporalImages(**kwargs)(dict(img_path=[str(p) for p in paths]))


def annotate(results: dict, **kwargs) -> dict:
    return LoadChangeAnnotations(**kwargs)(results)


@pytest.fixture
def rgb_pair(tmp_path):
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 255, (12, 10, 3), dtype=np.uint8) for _ in range(2)]
    return [write_png(tmp_path / f'd{k}.png', im) for k, im in enumerate(imgs)], imgs


class TestLoadImages:

    def test_png_is_rgb_hwc(self, rgb_pair):
        paths, imgs = rgb_pair
        res = load(paths)
        for got, want in zip(res['img'], imgs):
            np.testing.assert_array_equal(got, want)
        assert res['img_shape'] == res['ori_shape'] == (12, 10)
        assert res['geo_meta'][0] == dict(crs=None, transform=None, nodata=None, count=3,
                                          dtype='uint8')

    def test_rgba_gray_and_16bit_png(self, tmp_path):
        rgba = np.random.default_rng(1).integers(0, 255, (6, 5, 4), dtype=np.uint8)
        res = load([write_png(tmp_path / f'{k}.png', rgba) for k in 'ab'])
        np.testing.assert_array_equal(res['img'][0], rgba)
        gray = np.arange(30, dtype=np.uint16).reshape(6, 5) * 1000
        res = load([write_png(tmp_path / f'g{k}.png', gray) for k in 'ab'])
        assert res['img'][0].shape == (6, 5, 1) and res['img'][0].dtype == np.uint16
        np.testing.assert_array_equal(res['img'][1][..., 0], gray)

    def test_geotiff_keeps_crs_transform_nodata(self, tmp_path):
        arr = np.arange(4 * 5 * 3, dtype=np.int16).reshape(4, 5, 3)
        paths = [write_tif(tmp_path / f'{k}.tif', arr, nodata=-9999) for k in 'ab']
        res = load(paths)
        np.testing.assert_array_equal(res['img'][0], arr)
        meta = res['geo_meta'][1]
        assert CRS.from_wkt(meta['crs']) == CRS.from_epsg(32633)
        assert meta['transform'] == (10.0, 0.0, 500000.0, 0.0, -10.0, 4500000.0)
        assert meta['nodata'] == -9999.0 and meta['count'] == 3 and meta['dtype'] == 'int16'

    def test_real_landsat_geotiff(self, geotiff_samples_root):
        path = geotiff_samples_root / 'RGB.byte.tif'
        res = load([path, path], bands=[3, 1])
        with rasterio.open(path) as src:
            want = src.read([3, 1])
            crs, transform, nodata = src.crs, tuple(src.transform)[:6], src.nodata
        np.testing.assert_array_equal(res['img'][0], np.moveaxis(want, 0, -1))
        meta = res['geo_meta'][0]
        assert CRS.from_wkt(meta['crs']) == crs and crs.to_epsg() == 32618
        assert meta['transform'] == pytest.approx(transform)
        assert meta['nodata'] == nodata == 0.0 and meta['count'] == 2

    def test_six_band_uint16_pair_to_tensor(self, tmp_path):
        rng = np.random.default_rng(2)
        arrs = [rng.integers(0, 10000, (16, 8, 6), dtype=np.uint16) for _ in range(2)]
        paths = [write_tif(tmp_path / f'{k}.tif', a) for k, a in enumerate(arrs)]
        label = np.zeros((16, 8, 1), np.uint8)
        label[4:9] = 255
        label_path = write_tif(tmp_path / 'label.tif', label)
        res = LoadBitemporalImages()(dict(img_path=paths, seg_map_path=label_path))
        out = PackChangeInputs()(LoadChangeAnnotations()(res))
        assert tuple(out['inputs'].shape) == (2, 6, 16, 8)
        assert out['inputs'].dtype.is_floating_point
        np.testing.assert_array_equal(out['inputs'][1].numpy(), np.moveaxis(arrs[1], -1, 0))
        assert int(out['data_samples'].gt_sem_seg.data.sum()) == 5 * 8
        assert out['data_samples'].geo_meta[0]['count'] == 6

    def test_band_selection_and_float(self, tmp_path):
        arr = np.random.default_rng(3).integers(0, 999, (4, 4, 6), dtype=np.uint16)
        paths = [write_tif(tmp_path / f'{k}.tif', arr) for k in 'ab']
        res = load(paths, bands=[6, 2], to_float32=True)
        assert res['img'][0].dtype == np.float32
        np.testing.assert_array_equal(res['img'][1], arr[..., [5, 1]])
        with pytest.raises(ValueError, match=re.escape(paths[0])):
            load(paths, bands=[7])

    def test_rasterio_backend_reads_png(self, rgb_pair):
        paths, imgs = rgb_pair
        res = load(paths, backend='rasterio')
        np.testing.assert_array_equal(res['img'][0], imgs[0])


class TestLoadImagesErrors:

    def test_size_mismatch_names_both_files(self, tmp_path):
        a = write_png(tmp_path / 'a.png', np.zeros((8, 8, 3), np.uint8))
        b = write_png(tmp_path / 'b.png', np.zeros((8, 9, 3), np.uint8))
        with pytest.raises(ValueError) as err:
            load([a, b])
        assert a in str(err.value) and b in str(err.value)

    def test_band_count_mismatch(self, tmp_path):
        a = write_tif(tmp_path / 'a.tif', np.zeros((4, 4, 4), np.uint8))
        b = write_tif(tmp_path / 'b.tif', np.zeros((4, 4, 3), np.uint8))
        with pytest.raises(ValueError, match='b.tif'):
            load([a, b])

    @pytest.mark.parametrize('suffix', ['.png', '.tif'])
    def test_corrupt_file_names_it(self, tmp_path, suffix):
        good = write_png(tmp_path / 'good.png', np.zeros((4, 4, 3), np.uint8))
        bad = tmp_path / f'bad{suffix}'
        bad.write_bytes(b'\x89PNG garbage' * 10)
        with pytest.raises((OSError, ValueError), match=re.escape(str(bad))):
            load([good, bad])

    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match='nothere.png'):
            load([tmp_path / 'nothere.png'] * 2)


@pytest.fixture
def image_pair(tmp_path):
    paths = [write_png(tmp_path / f'i{k}.png', np.zeros((6, 7, 3), np.uint8)) for k in 'ab']
    return load(paths)


def with_label(results, tmp_path, label, name='label.png', key='seg_map_path'):
    results[key] = write_png(tmp_path / name, label)
    return results


class TestLoadAnnotations:

    @pytest.mark.parametrize('high,ignore', [(255, False), (1, False), (1, True)])
    def test_accepted_encodings(self, image_pair, tmp_path, high, ignore):
        label = np.zeros((6, 7), np.uint8)
        label[:2] = high
        if ignore:
            label[5] = 255
        res = annotate(with_label(image_pair, tmp_path, label))
        want = (label == high).astype(np.uint8)
        if ignore:
            want[5] = 255
        np.testing.assert_array_equal(res['gt_seg_map'], want)
        assert res['seg_fields'] == ['gt_seg_map']

    def test_unexpected_values_name_file_and_values(self, image_pair, tmp_path):
        label = np.zeros((6, 7), np.uint8)
        label[0], label[1] = 255, 17
        res = with_label(image_pair, tmp_path, label)
        with pytest.raises(ValueError) as err:
            annotate(res)
        assert res['seg_map_path'] in str(err.value) and '17' in str(err.value)

    def test_non_strict_threshold_from_results(self, image_pair, tmp_path):
        label = np.array([[0, 3, 120, 130, 250, 255, 9]] * 6, np.uint8)
        res = with_label(image_pair, tmp_path, label)
        res.update(label_strict=False, label_threshold=125)  # as CDDDataset passes them
        out = annotate(res)
        np.testing.assert_array_equal(out['gt_seg_map'][0], [0, 0, 0, 1, 1, 1, 0])
        out = annotate(dict(res), strict=False, label_threshold=5)
        np.testing.assert_array_equal(out['gt_seg_map'][0], [0, 0, 1, 1, 1, 1, 1])

    def test_rgb_label_rejected_grey_rgb_accepted(self, image_pair, tmp_path):
        grey = np.zeros((6, 7, 3), np.uint8)
        grey[:3] = 255
        out = annotate(with_label(dict(image_pair), tmp_path, grey, 'grey.png'))
        assert int(out['gt_seg_map'].sum()) == 3 * 7
        colour = grey.copy()
        colour[0, 0] = (255, 0, 0)
        res = with_label(image_pair, tmp_path, colour, 'colour.png')
        with pytest.raises(ValueError, match=re.escape(res['seg_map_path'])):
            annotate(res)

    def test_label_size_mismatch_names_both(self, image_pair, tmp_path):
        res = with_label(image_pair, tmp_path, np.zeros((6, 8), np.uint8))
        with pytest.raises(ValueError) as err:
            annotate(res)
        assert res['seg_map_path'] in str(err.value) and res['img_path'][0] in str(err.value)

    def test_no_label_is_inference(self, image_pair):
        out = annotate(image_pair)
        assert 'gt_seg_map' not in out

    def test_binarize_helper(self):
        assert binarize_change_label(np.array([0, 255]), 'x').tolist() == [0, 1]
        with pytest.raises(ValueError, match='x.png'):
            binarize_change_label(np.array([0, 2]), 'x.png')


class TestSemanticAnnotations:
    PALETTE = [[255, 255, 255], [0, 0, 255], [128, 128, 128], [0, 128, 0]]

    def semantic(self, image_pair, tmp_path, frm, to, **kwargs):
        with_label(image_pair, tmp_path, frm, 'from.png', 'seg_map_path_from')
        with_label(image_pair, tmp_path, to, 'to.png', 'seg_map_path_to')
        image_pair.setdefault('semantic_classes', ('u', 'a', 'b', 'c'))
        return annotate(image_pair, semantic=True, **kwargs)

    def test_index_maps_and_derived_binary(self, image_pair, tmp_path):
        frm = np.zeros((6, 7), np.uint8)
        frm[:2], frm[5, 0] = 3, 255
        to = np.where(frm == 3, 1, frm).astype(np.uint8)
        out = self.semantic(image_pair, tmp_path, frm, to)
        np.testing.assert_array_equal(out['gt_seg_map_from'], frm)
        np.testing.assert_array_equal(out['gt_seg_map_to'], to)
        want = (frm == 3).astype(np.uint8)
        want[5, 0] = 255
        np.testing.assert_array_equal(out['gt_seg_map'], want)
        assert out['seg_fields'] == ['gt_seg_map_from', 'gt_seg_map_to', 'gt_seg_map']

    def test_palette_conversion(self, image_pair, tmp_path):
        idx = np.zeros((6, 7), np.uint8)
        idx[:3], idx[3] = 2, 1
        rgb = np.asarray(self.PALETTE, np.uint8)[idx]
        image_pair['semantic_palette'] = self.PALETTE
        out = self.semantic(image_pair, tmp_path, rgb, rgb)
        np.testing.assert_array_equal(out['gt_seg_map_from'], idx)

    def test_values_outside_classes_name_file(self, image_pair, tmp_path):
        bad = np.full((6, 7), 4, np.uint8)
        with pytest.raises(ValueError, match=r'from\.png.*\[4\]'):
            self.semantic(image_pair, tmp_path, bad, bad)

    def test_unknown_colour_names_file(self, image_pair, tmp_path):
        rgb = np.zeros((6, 7, 3), np.uint8)
        rgb[..., 0] = 9
        with pytest.raises(ValueError, match=r'from\.png.*\[9, 0, 0\]'):
            self.semantic(image_pair, tmp_path, rgb, rgb, semantic_palette=self.PALETTE)

    def test_rgb_to_index_reports_unknown(self):
        rgb = np.array([[[255, 255, 255], [1, 2, 3]]], np.uint8)
        idx, unknown = rgb_to_index(rgb, self.PALETTE)
        assert idx[0, 0] == 0 and unknown == [[1, 2, 3]]
