"""Geometric transforms keep ``geo_meta['transform']`` true.

The oracle is independent of the code under test: every source pixel carries its own
(row, col) in its bands, so after a transform the output pixel tells which source pixel it
came from; the world coordinate of the output pixel centre, taken with rasterio from the
updated transform, must equal the world coordinate of that source pixel taken from the
original transform. Both dates have different transforms (with rotation terms), and a date
without georeference must stay ``None``.
"""
import copy

import numpy as np
import pytest
from rasterio.transform import Affine, xy

from mmrs.datasets.transforms import (PairedPad, PairedRandomCrop, PairedRandomFlip,
                                      PairedRandomResize, PairedRandomRotate90, PairedResize)

H, W = 17, 12
T1 = Affine(10.0, 0.5, 500000.0, 0.25, -10.0, 4000000.0)  # with shear/rotation terms
T2 = Affine(10.0, 0.0, 500003.0, 0.0, -10.0, 3999995.0)


def make_results(ring: bool = True) -> dict:
    """Bands: source row + 0.5, col + 0.5 (pixel-centre corner coordinates) and a valid flag
    (padding gets 0), which with ``ring`` is 0 on the outer ring too, so that pixels an
    enlarging resize sampled from the clamped border are known."""
    rows, cols = np.mgrid[:H, :W].astype(np.float64)
    valid = np.ones((H, W))
    if ring:
        valid[[0, -1], :] = valid[:, [0, -1]] = 0
    img = np.stack([rows + 0.5, cols + 0.5, valid], axis=-1)
    geo = [dict(crs='EPSG:32633', transform=tuple(T1)[:6], nodata=None, count=3,
                dtype='float64'),
           dict(crs='EPSG:32633', transform=tuple(T2)[:6], nodata=None, count=3,
                dtype='float64')]
    return dict(img=[img, img.copy()], img_shape=(H, W), ori_shape=(H, W), geo_meta=geo,
                seg_fields=[])


def check_geo(out: dict, source: list[Affine], exact: bool) -> int:
    """Compare world coordinates of output pixel centres with their source; returns count."""
    img = out['img'][0]
    h, w = img.shape[:2]
    rows, cols = np.mgrid[:h, :w]
    trusted = img[..., 2] > 1 - 1e-6  # not padding, not resampled from the border ring
    if exact:
        src_row, src_col = img[..., 0] - 0.5, img[..., 1] - 0.5
        assert np.allclose(src_row[trusted], np.round(src_row[trusted]))
    for date, t_src in enumerate(source):
        t_out = Affine(*out['geo_meta'][date]['transform'])
        x_out, y_out = xy(t_out, rows[trusted], cols[trusted], offset='center')
        x_src, y_src = t_src @ (img[..., 1][trusted], img[..., 0][trusted])
        np.testing.assert_allclose(x_out, x_src, atol=1e-4)
        np.testing.assert_allclose(y_out, y_src, atol=1e-4)
    return int(trusted.sum())


@pytest.mark.parametrize('transform', [
    PairedRandomFlip(prob=1.0, direction='horizontal'),
    PairedRandomFlip(prob=1.0, direction='vertical'),
    PairedRandomFlip(prob=1.0, direction='diagonal'),
    PairedRandomRotate90(prob=1.0),
    PairedRandomCrop(crop_size=(9, 7)),
    PairedPad(size=(20, 25)),
    PairedResize((24, 34), keep_ratio=False),
    PairedResize((5, 7), keep_ratio=False),
    PairedRandomResize((12, 17), ratio_range=(0.4, 2.5), keep_ratio=False),
], ids=lambda t: repr(t)[:60])
@pytest.mark.parametrize('seed', range(4))
def test_single_transform(transform, seed: int) -> None:
    np.random.seed(seed)
    results = make_results()
    shared = results['geo_meta']
    before = copy.deepcopy(shared)
    out = transform(results)
    assert check_geo(out, [T1, T2], exact='Resize' not in type(transform).__name__) > 0
    assert shared == before  # the caller's dicts are not mutated
    assert out['ori_geo_meta'] == before  # the original grid's georeference is kept


def test_every_quarter_turn() -> None:
    seen = set()
    for seed in range(20):
        np.random.seed(seed)
        out = PairedRandomRotate90(prob=1.0)(make_results())
        seen.add(out['rotate90_k'])
        check_geo(out, [T1, T2], exact=True)
    assert seen == {1, 2, 3}


def test_pixel_corner_by_hand() -> None:
    """Horizontal flip of a 12 px wide image: output column 0 is source column 11."""
    out = PairedRandomFlip(prob=1.0, direction='horizontal')(make_results())
    a, b, c, d, e, f = out['geo_meta'][0]['transform']
    # upper-left corner of output pixel (0, 0) = upper-right corner of source pixel (11, 0)
    assert (c, f) == pytest.approx(T1 @ (W, 0))
    assert (a, b, d, e) == pytest.approx((-T1.a, T1.b, -T1.d, T1.e))


# The resize of the chain only shrinks: OpenCV then never clamps a sample point to the
# border, so every non-padding pixel is a clean oracle wherever the crop put the border
# (enlarging is covered by test_single_transform, where the border ring is known).
CHAIN = [lambda: PairedRandomRotate90(0.7), lambda: PairedRandomFlip(0.7),
         lambda: PairedRandomCrop((11, 10)),
         lambda: PairedRandomResize((9, 9), ratio_range=(0.6, 1.0)),
         lambda: PairedRandomFlip(0.7), lambda: PairedRandomRotate90(0.7),
         lambda: PairedPad(size_divisor=8)]


@pytest.mark.parametrize('seed', range(8))
def test_composed_chain(seed: int) -> None:
    rng = np.random.default_rng(seed)
    np.random.seed(seed)
    steps = [CHAIN[i]() for i in rng.permutation(len(CHAIN))]
    out = make_results(ring=False)
    for step in steps:
        out = step(out)
    assert out['scale_factor'][0] < 1 and out['scale_factor'][1] < 1
    assert check_geo(out, [T1, T2], exact=False) >= 4, steps


def test_none_transform_stays_none() -> None:
    results = make_results(ring=False)  # the resize only shrinks, see CHAIN
    results['geo_meta'][1] = dict(crs=None, transform=None, nodata=None, count=3,
                                  dtype='float64')
    for step in (PairedRandomFlip(prob=1.0), PairedRandomRotate90(prob=1.0),
                 PairedRandomCrop(8), PairedResize((6, 7)), PairedPad(size_divisor=16)):
        results = step(results)
        assert results['geo_meta'][1]['transform'] is None
    check_geo(results, [T1], exact=False)
