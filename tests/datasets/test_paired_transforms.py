"""Paired geometry keeps pixel correspondence; photometry is per date; packing follows the contract.

Correspondence is checked with a constructed sample: date 2 = date 1 + a known per-band
offset and every label map is a function of date 1. After a transform the same relations
must hold on the output, for several random seeds.
"""
import copy

import numpy as np
import pytest
import torch
from rasterio.transform import Affine, xy

from mmrs.datasets.transforms import (BitemporalPhotoMetricDistortion, ExchangeTime,
                                      PackChangeInputs, PairedPad, PairedRandomCrop,
                                      PairedRandomFlip, PairedRandomResize,
                                      PairedRandomRotate90, PairedResize, resize_array)
from mmrs.structures import ChangeDataSample

H, W, C = 24, 20, 5
OFFSET = np.arange(1, C + 1, dtype=np.float32) * 7
SEEDS = range(6)


def label_fn(d1: np.ndarray) -> np.ndarray:
    return (d1[..., 0] > 0).astype(np.uint8)


def semantic_fn(d1: np.ndarray) -> np.ndarray:
    return (np.floor(np.abs(d1[..., 1])) % 7).astype(np.uint8)


def make_results(seed: int = 0, dtype=np.float32) -> dict:
    d1 = (np.random.default_rng(seed).normal(size=(H, W, C)) * 50).astype(dtype)
    d2 = (d1 + OFFSET).astype(dtype)
    return dict(
        img=[d1, d2], img_shape=(H, W), ori_shape=(H, W), img_path=['a.tif', 'b.tif'],
        geo_meta=[dict(crs='A'), dict(crs='B')], gt_seg_map=label_fn(d1),
        gt_seg_map_from=semantic_fn(d1), gt_seg_map_to=semantic_fn(d1) + 1,
        seg_fields=['gt_seg_map', 'gt_seg_map_from', 'gt_seg_map_to'])


def assert_correspondence(out: dict) -> None:
    d1, d2 = out['img']
    np.testing.assert_allclose(d2 - d1, np.broadcast_to(OFFSET, d1.shape), atol=1e-3)
    np.testing.assert_array_equal(out['gt_seg_map'], label_fn(d1))
    np.testing.assert_array_equal(out['gt_seg_map_from'], semantic_fn(d1))
    np.testing.assert_array_equal(out['gt_seg_map_to'], semantic_fn(d1) + 1)
    assert out['img_shape'] == d1.shape[:2] == out['gt_seg_map'].shape


T1 = Affine(2.0, 0.25, 1000.0, 0.5, -2.0, 5000.0)  # rotated grid: a mixed-up axis shows
T2 = Affine(2.0, 0.0, 1001.0, 0.0, -2.0, 4999.0)


def coord_label(rows: np.ndarray, cols: np.ndarray, k: int) -> np.ndarray:
    """Label ``k`` of source pixel ``(row, col)``: blocks of 3x2 with varied ids."""
    return ((rows // 3) * 5 + (cols // 2) * 3 + k) % 7


def coordinate_results() -> dict:
    """Date 1's bands are its source row + 0.5, col + 0.5, a valid flag (0 in padding) and
    noise; date 2 = date 1 + OFFSET; labels are functions of the source pixel."""
    rows, cols = np.mgrid[:H, :W]
    noise = np.random.default_rng(0).normal(size=(H, W, C - 3)) * 50
    d1 = np.concatenate([np.stack([rows + 0.5, cols + 0.5, np.ones((H, W))], -1), noise],
                        axis=-1)
    geo = [dict(crs='X', transform=tuple(T1)[:6]), dict(crs='X', transform=tuple(T2)[:6])]
    maps = {key: coord_label(rows, cols, k).astype(np.uint8)
            for k, key in enumerate(('gt_seg_map', 'gt_seg_map_from', 'gt_seg_map_to'))}
    return dict(img=[d1, d1 + OFFSET.astype(np.float64)], img_shape=(H, W), ori_shape=(H, W),
                geo_meta=geo, seg_fields=list(maps), **maps)


def assert_chain_oracle(out: dict) -> None:
    d1, d2 = out['img']
    valid = d1[..., 2]
    inside = valid > 1 - 1e-6
    padding = valid == 0
    assert inside.any() and (inside | padding).all()  # padding only after the resize
    np.testing.assert_allclose((d2 - d1)[inside], np.broadcast_to(OFFSET, d1.shape)[inside],
                               atol=1e-3)
    for key in ('gt_seg_map', 'gt_seg_map_from', 'gt_seg_map_to'):
        assert out[key].shape == d1.shape[:2]
        assert (out[key][padding] == 255).all()
    # an enlarging resize repeats the border pixels (clamped): leave a 2 px ring out
    rows, cols = np.nonzero(inside)
    trusted = np.zeros_like(inside)
    trusted[rows.min() + 2:rows.max() - 1, cols.min() + 2:cols.max() - 1] = True
    src_r, src_c = d1[..., 0], d1[..., 1]
    # the labels hold the source pixel under each pixel centre (ties at pixel edges skipped)
    clear = trusted & (np.abs(src_r - np.round(src_r)) > 1e-4) & (
        np.abs(src_c - np.round(src_c)) > 1e-4)
    assert clear.sum() >= 0.3 * trusted.sum() > 0
    for k, key in enumerate(('gt_seg_map', 'gt_seg_map_from', 'gt_seg_map_to')):
        want = coord_label(np.floor(src_r[clear]).astype(int),
                           np.floor(src_c[clear]).astype(int), k)
        np.testing.assert_array_equal(out[key][clear], want)
    # and each date's geo transform maps the pixel to its source pixel's world coordinate
    rr, cc = np.nonzero(trusted)
    for date, t_src in enumerate((T1, T2)):
        x, y = xy(Affine(*out['geo_meta'][date]['transform']), rr, cc, offset='center')
        x_src, y_src = t_src @ (src_c[trusted], src_r[trusted])
        np.testing.assert_allclose(x, x_src, atol=1e-4)
        np.testing.assert_allclose(y, y_src, atol=1e-4)


EXACT = [
    PairedRandomFlip(prob=1.0),
    PairedRandomRotate90(prob=1.0),
    PairedRandomCrop(crop_size=(10, 7)),
    PairedRandomCrop(crop_size=(10, 7), cat_max_ratio=0.7),
]


class TestCorrespondence:

    @pytest.mark.parametrize('transform', EXACT, ids=lambda t: repr(t)[:40])
    def test_exact_ops_keep_correspondence(self, transform):
        changed = 0
        for seed in SEEDS:
            np.random.seed(seed)
            results = make_results(seed)
            before = results['img'][0].copy()
            out = transform(results)
            assert_correspondence(out)
            changed += out['img'][0].shape != before.shape or not np.array_equal(
                out['img'][0], before)
        assert changed == len(SEEDS)  # the transform really did something every time

    def test_chain_keeps_correspondence(self):
        """Every step of a training chain runs, the resize included; each output pixel is
        checked against the source pixel its bands say it came from."""
        chain = [PairedRandomRotate90(0.5), PairedRandomFlip(0.5), PairedRandomCrop(12),
                 PairedRandomResize((16, 16), ratio_range=(0.5, 2.0)),
                 PairedPad(size_divisor=8)]
        ran = dict(flip=0, rot=0, up=0, down=0)
        for seed in SEEDS:
            np.random.seed(seed)
            out = coordinate_results()
            for t in chain:
                out = t(out)
            ran['flip'] += out['flip']
            ran['rot'] += out['rotate90_k'] != 0
            ran['up' if out['scale_factor'][0] > 1 else 'down'] += 1
            assert_chain_oracle(out)
        assert all(ran.values()), ran  # flips, turns, enlarging and shrinking all happened

    def test_flip_directions(self):
        for direction, axes in (('horizontal', 1), ('vertical', 0), ('diagonal', (0, 1))):
            res = make_results()
            out = PairedRandomFlip(prob=1.0, direction=direction)(copy.deepcopy(res))
            assert out['flip'] and out['flip_direction'] == direction
            np.testing.assert_array_equal(out['img'][1], np.flip(res['img'][1], axes))
            np.testing.assert_array_equal(out['gt_seg_map'], np.flip(res['gt_seg_map'], axes))
        out = PairedRandomFlip(prob=0.0)(make_results())
        assert out['flip'] is False and out['flip_direction'] is None

    def test_rot90_swaps_shape(self):
        shapes = set()
        for seed in range(10):
            np.random.seed(seed)
            out = PairedRandomRotate90(prob=1.0)(make_results())
            assert out['rotate90_k'] in (1, 2, 3)
            shapes.add(out['img_shape'])
        assert shapes == {(H, W), (W, H)}

    @pytest.mark.parametrize('keep_ratio,scale,want', [(False, (30, 12), (12, 30)),
                                                       (True, (40, 40), (40, 33))])
    def test_resize_images_linear_labels_nearest(self, keep_ratio, scale, want):
        res = make_results()
        orig = res['img'][0].copy()
        out = PairedResize(scale, keep_ratio=keep_ratio)(res)
        assert out['img_shape'] == want and out['img'][0].dtype == np.float32
        d1, d2 = out['img']
        np.testing.assert_allclose(d2 - d1, np.broadcast_to(OFFSET, d1.shape), atol=1e-3)
        nearest = resize_array(orig, (want[1], want[0]), 'nearest')
        np.testing.assert_array_equal(out['gt_seg_map'], label_fn(nearest))
        np.testing.assert_array_equal(out['gt_seg_map_from'], semantic_fn(nearest))
        assert out['scale_factor'] == (want[1] / W, want[0] / H)

    def test_random_resize_range(self):
        for seed in SEEDS:
            np.random.seed(seed)
            out = PairedRandomResize((20, 24), ratio_range=(0.5, 2.0), keep_ratio=False)(
                make_results())
            h, w = out['img_shape']
            assert 12 <= h <= 48 and 10 <= w <= 40 and out['gt_seg_map'].shape == (h, w)

    @pytest.mark.parametrize('dtype,bands', [(np.uint16, 13), (np.float32, 1),
                                             (np.int8, 3), (np.float64, 300)])
    def test_resize_any_band_count_and_dtype(self, dtype, bands):
        img = (np.random.default_rng(0).random((9, 7, bands)) * 100).astype(dtype)
        out = resize_array(img, (14, 18), 'bilinear')
        assert out.shape == (18, 14, bands) and out.dtype == dtype

    def test_pad_to_size_and_divisor(self):
        res = make_results()
        orig = copy.deepcopy(res)
        out = PairedPad(size=(25, 30))(res)  # (w, h)
        assert out['pad_shape'] == out['img_shape'] == (30, 25)
        np.testing.assert_array_equal(out['img'][1][:H, :W], orig['img'][1])
        assert (out['img'][0][H:] == 0).all() and (out['gt_seg_map'][:, W:] == 255).all()
        np.testing.assert_array_equal(out['gt_seg_map_to'][:H, :W], orig['gt_seg_map_to'])
        out = PairedPad(size_divisor=16)(make_results())
        assert out['img'][0].shape == (32, 32, C) and out['gt_seg_map'].shape == (32, 32)
        with pytest.raises(ValueError):
            PairedPad(size=(4, 4))(make_results())


class TestCatMaxRatio:

    @staticmethod
    def crop_ratios(cat_max_ratio: float) -> list[float]:
        label = np.zeros((64, 64), np.uint8)
        label[:, 24:40] = 1  # ~29% of 16x16 windows have both classes at a ratio < 0.75
        ratios = []
        for seed in range(20):
            np.random.seed(seed)
            res = dict(img=[np.zeros((64, 64, 3), np.uint8)] * 2, gt_seg_map=label,
                       seg_fields=['gt_seg_map'])
            out = PairedRandomCrop(16, cat_max_ratio=cat_max_ratio)(res)
            counts = np.bincount(out['gt_seg_map'].ravel(), minlength=2)
            ratios.append(counts.max() / counts.sum())
        return ratios

    def test_crop_respects_cat_max_ratio(self):
        free = self.crop_ratios(1.0)
        limited = self.crop_ratios(0.75)
        assert sum(r < 0.75 for r in limited) >= 17  # 10 retries: ~97% per crop
        assert sum(r < 0.75 for r in free) <= 10


class TestPhotometric:

    @staticmethod
    def rgb_pair() -> dict:
        img = np.random.default_rng(0).integers(30, 220, (16, 16, 3), dtype=np.uint8)
        return dict(img=[img.copy(), img.copy()])

    def test_dates_get_independent_draws(self):
        t = BitemporalPhotoMetricDistortion()
        differ = 0
        for seed in range(10):
            np.random.seed(seed)
            out = t(self.rgb_pair())
            differ += not np.array_equal(out['img'][0], out['img'][1])
        assert differ >= 8

    def test_brightness_deltas_differ_per_date_and_are_seeded(self):
        t = BitemporalPhotoMetricDistortion(contrast_range=(1, 1), saturation_range=(1, 1),
                                            hue_delta=0)
        img = np.full((8, 8, 3), 128, np.uint8)
        deltas = []
        for _ in range(2):
            np.random.seed(7)
            out = t(dict(img=[img.copy(), img.copy()]))
            deltas.append([int(o[0, 0, 0]) - 128 for o in out['img']])
        assert deltas[0] == deltas[1]  # same seed, same draws
        assert deltas[0][0] != deltas[0][1]  # but the two dates got different deltas
        assert all(abs(d) <= 32 for d in deltas[0])

    def test_multiband_uint16_brightness_scaled(self):
        t = BitemporalPhotoMetricDistortion(contrast_range=(1, 1), value_range=(0, 4095))
        img = np.full((8, 8, 6), 3000, np.uint16)
        seen = []
        for seed in range(8):
            np.random.seed(seed)
            out = t(dict(img=[img.copy(), img.copy()]))
            for o in out['img']:
                assert o.dtype == np.uint16 and o.shape == (8, 8, 6)
                assert len(np.unique(o)) == 1  # same shift on every band
                seen.append(int(o[0, 0, 0]) - 3000)
        assert max(abs(d) for d in seen) <= 32 * 4095 / 255 + 1
        assert max(abs(d) for d in seen) > 32  # scaled beyond the 8-bit delta

    def test_band_without_spread_is_not_shifted_without_value_range(self):
        # the range is measured on the data (issue 10, point 5), not the dtype's 0..65535:
        # a constant band has no spread, so no brightness shift (see test_photometric_ranges)
        t = BitemporalPhotoMetricDistortion(contrast_range=(1, 1))
        img = np.full((8, 8, 6), 30000, np.uint16)
        for seed in range(4):
            np.random.seed(seed)
            out = t(dict(img=[img.copy(), img.copy()]))
            assert all((o == 30000).all() for o in out['img'])

    def test_float_multiband(self):
        img = np.random.default_rng(1).random((8, 8, 5)).astype(np.float32)
        np.random.seed(0)
        out = BitemporalPhotoMetricDistortion()(dict(img=[img, img.copy()]))
        assert out['img'][0].dtype == np.float32 and out['img'][0].shape == (8, 8, 5)


class TestExchangeTime:

    def test_swaps_dates(self):
        res = make_results()
        orig = copy.deepcopy(res)
        out = ExchangeTime(prob=1.0)(res)
        assert out['time_exchanged'] is True
        np.testing.assert_array_equal(out['img'][0], orig['img'][1])
        np.testing.assert_array_equal(out['img'][1], orig['img'][0])
        assert out['img_path'] == ['b.tif', 'a.tif']
        assert out['geo_meta'] == [dict(crs='B'), dict(crs='A')]
        np.testing.assert_array_equal(out['gt_seg_map_from'], orig['gt_seg_map_to'])
        np.testing.assert_array_equal(out['gt_seg_map_to'], orig['gt_seg_map_from'])
        np.testing.assert_array_equal(out['gt_seg_map'], orig['gt_seg_map'])
        assert sorted(out['seg_fields']) == sorted(orig['seg_fields'])

    def test_swaps_the_original_grids_too(self):
        # after a geometric transform the untouched per-date grids live in ori_geo_meta;
        # the prediction writer georeferences with them, so they must follow the dates
        res = make_results()
        res['ori_geo_meta'] = [dict(crs='A0'), dict(crs='B0')]
        out = ExchangeTime(prob=1.0)(res)
        assert out['ori_geo_meta'] == [dict(crs='B0'), dict(crs='A0')]

    def test_prob_zero_keeps_order(self):
        out = ExchangeTime(prob=0.0)(make_results())
        assert out['time_exchanged'] is False and out['img_path'] == ['a.tif', 'b.tif']


class TestPack:

    def test_contract(self):
        res = PairedRandomFlip(prob=1.0, direction='vertical')(make_results())  # strided views
        res.update(sample_idx=3, seg_map_path='l.png', pad_shape=(H, W))
        out = PackChangeInputs()(res)
        assert tuple(out['inputs'].shape) == (2, C, H, W) and out['inputs'].dtype == torch.float32
        np.testing.assert_array_equal(out['inputs'][1].numpy(),
                                      np.moveaxis(res['img'][1], -1, 0))
        sample = out['data_samples']
        assert isinstance(sample, ChangeDataSample)
        for field in ('gt_sem_seg', 'gt_sem_seg_from', 'gt_sem_seg_to'):
            data = getattr(sample, field).data
            assert tuple(data.shape) == (1, H, W) and data.dtype == torch.long
        meta = sample.metainfo
        assert meta['geo_meta'] == [dict(crs='A'), dict(crs='B')]
        assert meta['flip'] and meta['flip_direction'] == 'vertical'
        assert meta['sample_idx'] == 3 and meta['img_shape'] == (H, W)
        assert meta['pad_shape'] == (H, W) and meta['seg_map_path'] == 'l.png'

    def test_uint8_kept_other_dtypes_float32(self):
        img8 = np.zeros((4, 5, 3), np.uint8)
        assert PackChangeInputs()(dict(img=[img8, img8]))['inputs'].dtype == torch.uint8
        img64 = np.zeros((4, 5), np.float64)
        out = PackChangeInputs()(dict(img=[img64, img64]))
        assert out['inputs'].dtype == torch.float32 and tuple(out['inputs'].shape) == (2, 1, 4, 5)

    def test_nodata_mask_and_geometry_metainfo(self):
        np.random.seed(0)
        res = make_results()
        mask = np.zeros((H, W), bool)
        mask[:3, :4] = True
        res['nodata_mask'] = mask
        for t in (PairedRandomRotate90(prob=1.0), PairedRandomCrop((20, 18)),
                  PairedPad(size=(32, 32))):
            res = t(res)
        sample = PackChangeInputs()(res)['data_samples']
        assert sample.nodata_mask.data.dtype == torch.bool
        np.testing.assert_array_equal(sample.nodata_mask.data[0].numpy(), mask)  # untouched
        meta = sample.metainfo
        assert meta['rotate90_k'] in (1, 2, 3) and len(meta['crop_bbox']) == 4
        h, w = res['img'][0].shape[:2]
        crop_h, crop_w = meta['crop_bbox'][1] - meta['crop_bbox'][0], \
            meta['crop_bbox'][3] - meta['crop_bbox'][2]
        assert meta['img_padding_size'] == (0, w - crop_w, 0, h - crop_h)
        assert set(meta['transformed_gt_fields']) == {'gt_sem_seg', 'gt_sem_seg_from',
                                                      'gt_sem_seg_to'}
        assert meta['ori_geo_meta'] == [dict(crs='A'), dict(crs='B')]
        # labels loaded after the geometric steps are not on the pipeline grid
        assert PackChangeInputs()(make_results())['data_samples'].transformed_gt_fields == ()
