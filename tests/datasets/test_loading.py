"""LoadBitemporalImages / LoadChangeAnnotations: GeoTIFF metadata, band handling, label
encodings (a dataset setting), palette PNGs, bad inputs."""
import re

import cv2
import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image
from rasterio.crs import CRS

from mmrs.datasets.transforms import (LoadBitemporalImages, LoadChangeAnnotations,
                                      PackChangeInputs, PairedResize, decode_change_label,
                                      read_label, read_raster, rgb_to_index)

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


class TestSharedReader:
    """One reader for datasets, panels and eval: file paths and fileio bytes agree."""

    def test_bytes_through_fileio_equal_path_reads(self, tmp_path):
        rgb = np.random.default_rng(5).integers(0, 255, (5, 4, 3), dtype=np.uint8)
        for path in (write_png(tmp_path / 'x.png', rgb), write_tif(tmp_path / 'x.tif', rgb)):
            by_path, meta = read_raster(path)
            by_bytes, meta_bytes = read_raster(path, backend_args=dict(backend='local'))
            np.testing.assert_array_equal(by_path, rgb)
            np.testing.assert_array_equal(by_bytes, rgb)
            assert meta == meta_bytes
        idx = np.eye(4, dtype=np.uint8)
        label = write_palette_png(tmp_path / 'p.png', idx, [[0, 0, 0], [9, 9, 9]])
        got, _ = read_label(label, backend_args=dict(backend='local'))
        np.testing.assert_array_equal(got[..., 0], idx)

    def test_panels_use_the_same_reader(self, tmp_path):
        from mmrs.visualization import read_image
        data = np.random.default_rng(6).integers(0, 4000, (3, 4, 5), dtype=np.uint16)
        path = write_tif(tmp_path / 'm.tif', data)
        np.testing.assert_array_equal(read_image(path), read_raster(path)[0])


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


def write_palette_png(path, indices: np.ndarray, palette: list) -> str:
    """A "P" mode PNG: the file stores ``indices``, a viewer shows ``palette[indices]``."""
    img = Image.fromarray(indices.astype(np.uint8), mode='P')
    flat = [v for colour in palette for v in colour]
    img.putpalette(flat + [0] * (768 - len(flat)))
    img.save(path)
    return str(path)


class TestLoadAnnotations:

    @pytest.mark.parametrize('encoding,high,ignore', [('0/255', 255, False), ('0/1', 1, False),
                                                      ('0/1/255', 1, True)])
    def test_declared_encodings(self, image_pair, tmp_path, encoding, high, ignore):
        label = np.zeros((6, 7), np.uint8)
        label[:2] = high
        if ignore:
            label[5] = 255
        res = with_label(image_pair, tmp_path, label)
        res['label_encoding'] = encoding  # as the dataset passes it
        out = annotate(res)
        want = np.zeros((6, 7), np.uint8)
        want[:2] = 1
        if ignore:
            want[5] = 255
        np.testing.assert_array_equal(out['gt_seg_map'], want)
        assert out['seg_fields'] == ['gt_seg_map']

    def test_no_change_tile_of_an_ignore_dataset_is_not_changed(self, image_pair, tmp_path):
        """{0, 1, 255 = ignore} dataset, a tile without change: only 0 and 255 in the file.

        Guessing from the file's values reads it as 0/255 and calls the ignored border
        "changed"; the declared encoding keeps it ignored.
        """
        label = np.zeros((6, 7), np.uint8)
        label[:, 5:] = 255  # ignored border, no changed pixel at all
        res = with_label(image_pair, tmp_path, label)
        res['label_encoding'] = '0/1/255'
        out = annotate(res)
        assert not (out['gt_seg_map'] == 1).any()
        np.testing.assert_array_equal(out['gt_seg_map'][:, 5:], 255)
        np.testing.assert_array_equal(out['gt_seg_map'][:, :5], 0)

    def test_encoding_argument_overrides_dataset(self, image_pair, tmp_path):
        label = np.zeros((6, 7), np.uint8)
        label[0] = 1
        res = with_label(image_pair, tmp_path, label)
        res['label_encoding'] = '0/255'
        out = annotate(dict(res), label_encoding='0/1')
        assert int(out['gt_seg_map'].sum()) == 7
        with pytest.raises(ValueError, match='label_encoding'):
            LoadChangeAnnotations(label_encoding='0-255')

    @pytest.mark.parametrize('encoding,values,odd', [('0/255', (0, 1), '[1]'),
                                                     ('0/1', (0, 255), '[255]'),
                                                     ('0/1/255', (0, 1, 17), '[17]')])
    def test_values_outside_the_encoding_name_file(self, image_pair, tmp_path, encoding,
                                                   values, odd):
        label = np.zeros((6, 7), np.uint8)
        for row, value in enumerate(values):
            label[row] = value
        res = with_label(image_pair, tmp_path, label)
        res['label_encoding'] = encoding
        with pytest.raises(ValueError) as err:
            annotate(res)
        msg = str(err.value)
        assert res['seg_map_path'] in msg and odd in msg and repr(encoding) in msg

    def test_default_encoding_is_0_255(self, image_pair, tmp_path):
        label = np.zeros((6, 7), np.uint8)
        label[0] = 1  # a 0/1 file under the default 0/255 encoding: an error, not a guess
        res = with_label(image_pair, tmp_path, label)
        with pytest.raises(ValueError, match=r"'0/1'"):  # the hint names the fitting one
            annotate(res)

    def test_threshold_encoding_from_results(self, image_pair, tmp_path):
        label = np.array([[0, 3, 120, 130, 250, 255, 9]] * 6, np.uint8)
        res = with_label(image_pair, tmp_path, label)
        res.update(label_encoding='threshold', label_threshold=125)  # as CDDDataset does
        out = annotate(res)
        np.testing.assert_array_equal(out['gt_seg_map'][0], [0, 0, 0, 1, 1, 1, 0])
        out = annotate(dict(res), label_threshold=5)
        np.testing.assert_array_equal(out['gt_seg_map'][0], [0, 0, 1, 1, 1, 1, 1])

    def test_threshold_accepts_lossy_grey_rgb(self, image_pair, tmp_path):
        rgb = np.zeros((6, 7, 3), np.uint8)
        rgb[:3] = (250, 255, 247)  # JPEG-ish grey: channels not exactly equal
        rgb[3:] = (4, 0, 6)
        res = with_label(image_pair, tmp_path, rgb)
        res['label_encoding'] = 'threshold'
        np.testing.assert_array_equal(annotate(res)['gt_seg_map'][:, 0], [1, 1, 1, 0, 0, 0])

    def test_palette_png_gives_indices(self, image_pair, tmp_path):
        """A "P" mode 0/1 label whose palette shows 1 as red: the indices are the labels."""
        idx = np.zeros((6, 7), np.uint8)
        idx[2:4] = 1
        image_pair['seg_map_path'] = write_palette_png(tmp_path / 'p.png', idx,
                                                       [[0, 0, 0], [255, 0, 0]])
        assert Image.open(image_pair['seg_map_path']).mode == 'P'
        image_pair['label_encoding'] = '0/1'
        np.testing.assert_array_equal(annotate(image_pair)['gt_seg_map'], idx)

    def test_plain_grey_png(self, image_pair, tmp_path):
        label = np.zeros((6, 7), np.uint8)
        label[2:4] = 255
        res = with_label(image_pair, tmp_path, label)
        assert Image.open(res['seg_map_path']).mode == 'L'
        np.testing.assert_array_equal(annotate(res)['gt_seg_map'], label // 255)

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

    def test_corrupt_label_names_file(self, image_pair, tmp_path):
        bad = tmp_path / 'bad.png'
        bad.write_bytes(b'\x89PNG garbage' * 10)
        image_pair['seg_map_path'] = str(bad)
        with pytest.raises(OSError, match=re.escape(str(bad))):
            annotate(image_pair)

    def test_decode_helper(self):
        assert decode_change_label(np.array([0, 255]), '0/255', 'x').tolist() == [0, 1]
        assert decode_change_label(np.array([0, 255]), '0/1/255', 'x').tolist() == [0, 255]
        with pytest.raises(ValueError, match='x.png'):
            decode_change_label(np.array([0, 2]), '0/255', 'x.png')


class TestAnnotationsAfterGeometry:
    """mmseg test-style pipeline: load, resize, load annotations, pack."""

    def test_labels_stay_at_original_size_outside_seg_fields(self, tmp_path):
        rng = np.random.default_rng(4)
        paths = [write_png(tmp_path / f'{k}.png', rng.integers(0, 255, (6, 8, 3), np.uint8))
                 for k in 'ab']
        label = np.zeros((6, 8), np.uint8)
        label[:, :3] = 255
        res = load(paths)
        res['seg_map_path'] = write_png(tmp_path / 'l.png', label)
        res = PairedResize(scale=(16, 12))(res)
        assert res['img_shape'] == (12, 16)
        out = annotate(res)
        assert out['gt_seg_map'].shape == (6, 8)  # original size, as the metric compares
        assert 'gt_seg_map' not in out['seg_fields']
        np.testing.assert_array_equal(out['gt_seg_map'], label // 255)

    def test_before_geometry_labels_move_with_images(self, tmp_path):
        paths = [write_png(tmp_path / f'{k}.png', np.zeros((6, 8, 3), np.uint8)) for k in 'ab']
        res = load(paths)
        res['seg_map_path'] = write_png(tmp_path / 'l.png', np.zeros((6, 8), np.uint8))
        out = PairedResize(scale=(16, 12))(annotate(res))
        assert out['gt_seg_map'].shape == (12, 16)


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
