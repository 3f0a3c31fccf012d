"""ChangeLocalVisualizer panels, colours and the ChangeVisualizationHook output folder."""
import itertools
from unittest.mock import MagicMock

import cv2
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData

from mmrs.engine import ChangeVisualizationHook
from mmrs.registry import HOOKS, VISUALIZERS
from mmrs.structures import ChangeDataSample
from mmrs.visualization import (CAPTION_HEIGHT, CHANGE_COLOR, FN_COLOR, FP_COLOR, GAP,
                                LEGEND_HEIGHT, TITLE_HEIGHT, TP_COLOR, ChangeLocalVisualizer,
                                change_scores, read_image)

H, W = 48, 100  # wide enough for the binary legend to fit on one line
_names = itertools.count()


def make_visualizer(**kwargs) -> ChangeLocalVisualizer:
    """A fresh instance (ManagerMixin returns the old one for a reused name)."""
    return ChangeLocalVisualizer.get_instance(f'test_vis_{next(_names)}', **kwargs)


def pixel(data: np.ndarray) -> PixelData:
    return PixelData(data=torch.from_numpy(np.asarray(data)[None]).long())


def known_maps() -> tuple[np.ndarray, np.ndarray]:
    """pred/gt with one square each of TP, FP, FN, and a GT-ignored square predicted 1."""
    pred = np.zeros((H, W), np.int64)
    gt = np.zeros((H, W), np.int64)
    pred[5:16, 5:16] = gt[5:16, 5:16] = 1  # TP: 121 px
    pred[20:31, 5:16] = 1  # FP: 121 px
    gt[20:31, 30:41] = 1  # FN: 121 px
    gt[38:44, 60:70] = 255  # ignored
    pred[38:44, 60:70] = 1
    return pred, gt


TP_PX, FP_PX, FN_PX, TN_PX, IGN_PX = (10, 10), (25, 10), (25, 35), (2, 90), (40, 65)


def rgb_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return tuple(rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(2))


def binary_sample(paths=('a/A/tile_1.png', 'a/B/tile_1.png')) -> ChangeDataSample:
    pred, gt = known_maps()
    sample = ChangeDataSample(metainfo=dict(img_path=list(paths), ori_shape=(H, W)))
    sample.pred_sem_seg, sample.gt_sem_seg = pixel(pred), pixel(gt)
    return sample


def render(vis, pair, sample, tmp_path, **kwargs) -> np.ndarray:
    """add_datasample to a PNG and read it back as RGB (checks the RGB→BGR write)."""
    out = tmp_path / f'out_{next(_names)}.png'
    vis.add_datasample('s', pair, sample, out_file=str(out), **kwargs)
    img = cv2.imread(str(out), cv2.IMREAD_COLOR)
    assert img is not None, 'out_file was not written'
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def panel(fig: np.ndarray, col: int, row: int = 0) -> np.ndarray:
    """The image area of panel ``col`` in ``row`` (title strips excluded)."""
    y0 = CAPTION_HEIGHT + TITLE_HEIGHT + row * (TITLE_HEIGHT + H + GAP)
    x0 = col * (W + GAP)
    return fig[y0:y0 + H, x0:x0 + W]


def test_binary_layout_and_colours(tmp_path):
    img1, img2 = rgb_pair()
    fig = render(make_visualizer(alpha=1.0), (img1, img2), binary_sample(), tmp_path)
    assert fig.shape == (CAPTION_HEIGHT + TITLE_HEIGHT + H + LEGEND_HEIGHT, 4 * W + 3 * GAP, 3)
    np.testing.assert_array_equal(panel(fig, 0), img1)
    np.testing.assert_array_equal(panel(fig, 1), img2)
    pred_p, gt_p = panel(fig, 2), panel(fig, 3)
    # prediction panel: its own positives coloured by correctness
    assert tuple(pred_p[TP_PX]) == TP_COLOR
    assert tuple(pred_p[FP_PX]) == FP_COLOR
    # ground-truth panel: labelled change, found (green) or missed (documented magenta)
    assert tuple(gt_p[TP_PX]) == TP_COLOR
    assert tuple(gt_p[FN_PX]) == FN_COLOR == (255, 0, 255)
    # true negatives are the untouched date-2 image
    pred, gt = known_maps()
    tn = (pred != 1) & (gt != 1)
    np.testing.assert_array_equal(pred_p[tn & (gt != 255)], img2[tn & (gt != 255)])
    np.testing.assert_array_equal(gt_p[tn], img2[tn])
    assert tuple(pred_p[TN_PX]) == tuple(img2[TN_PX])
    # ignored GT pixels are neither TP nor FP in the prediction panel
    assert tuple(pred_p[IGN_PX]) == tuple(img2[IGN_PX])


def test_default_alpha_blends_over_date2(tmp_path):
    img1, img2 = rgb_pair(1)
    vis = make_visualizer()
    fig = render(vis, (img1, img2), binary_sample(), tmp_path)
    expected = np.round(img2[TP_PX] * (1 - vis.alpha) + np.array(TP_COLOR) * vis.alpha)
    np.testing.assert_array_equal(panel(fig, 2)[TP_PX], expected)
    assert tuple(panel(fig, 2)[TN_PX]) == tuple(img2[TN_PX])


def test_change_scores_ignore_and_empty():
    pred, gt = known_maps()
    f1, iou = change_scores(pred, gt)
    assert f1 == pytest.approx(0.5) and iou == pytest.approx(1 / 3)
    assert change_scores(np.zeros((4, 4)), np.zeros((4, 4))) == (None, None)


def test_without_gt_three_panels_in_yellow(tmp_path):
    sample = binary_sample()
    del sample.gt_sem_seg
    img1, img2 = rgb_pair(2)
    fig = render(make_visualizer(alpha=1.0), (img1, img2), sample, tmp_path)
    assert fig.shape[1] == 3 * W + 2 * GAP
    assert tuple(panel(fig, 2)[FP_PX]) == CHANGE_COLOR
    assert tuple(panel(fig, 2)[FN_PX]) == tuple(img2[FN_PX])


def test_no_sample_draws_two_dates(tmp_path):
    img1, img2 = rgb_pair(3)
    fig = render(make_visualizer(), (img1, img2), None, tmp_path)
    assert fig.shape == (CAPTION_HEIGHT + TITLE_HEIGHT + H, 2 * W + GAP, 3)


def test_six_band_uint16_is_stretched(tmp_path):
    rng = np.random.default_rng(4)
    pair = tuple(rng.integers(200, 9000, (H, W, 6), dtype=np.uint16) for _ in range(2))
    vis = make_visualizer(rgb_bands=(3, 2, 1), alpha=1.0)
    fig = render(vis, pair, binary_sample(), tmp_path)
    assert fig.shape[1] == 4 * W + 3 * GAP
    expected = []
    for b in (3, 2, 1):  # independent 2-98 % stretch
        band = pair[0][..., b].astype(np.float64)
        lo, hi = np.percentile(band, (2, 98))
        expected.append(np.clip(np.round((band - lo) / (hi - lo) * 255), 0, 255))
    np.testing.assert_allclose(panel(fig, 0), np.stack(expected, -1), atol=1)
    assert tuple(panel(fig, 2)[TP_PX]) == TP_COLOR


def test_semantic_second_row(tmp_path):
    palette = [[255, 255, 255], [0, 0, 255], [255, 128, 0], [0, 128, 0]]
    vis = make_visualizer(alpha=1.0)
    vis.dataset_meta = dict(semantic_classes=('unchanged', 'water', 'building', 'tree'),
                            semantic_palette=palette)
    sample = binary_sample()
    sem = np.zeros((H, W), np.int64)
    sem[5:16, 5:16] = 2
    sample.pred_sem_seg_from, sample.pred_sem_seg_to = pixel(sem), pixel(sem * 0 + 3 * (sem > 0))
    sample.gt_sem_seg_from, sample.gt_sem_seg_to = pixel(sem), pixel(sem)
    img1, img2 = rgb_pair(5)
    fig = render(vis, (img1, img2), sample, tmp_path)
    rows_h = CAPTION_HEIGHT + 2 * (TITLE_HEIGHT + H) + GAP
    assert fig.shape[1] == 4 * W + 3 * GAP
    assert fig.shape[0] == rows_h + 2 * LEGEND_HEIGHT  # TP/FP/FN line + class line
    assert tuple(panel(fig, 0, row=1)[TP_PX]) == tuple(palette[2])  # date 1, pred
    assert tuple(panel(fig, 1, row=1)[TP_PX]) == tuple(palette[3])  # date 2, pred
    np.testing.assert_array_equal(panel(fig, 0, row=1)[TN_PX], img1[TN_PX])  # class 0 = image
    assert tuple(panel(fig, 3, row=1)[TP_PX]) == tuple(palette[2])  # date 2, GT


def test_backends_receive_image_without_out_file(tmp_path):
    vis = make_visualizer(vis_backends=[dict(type='LocalVisBackend')], save_dir=str(tmp_path))
    vis.add_datasample('val_x', rgb_pair(), binary_sample(), step=3)
    assert list((tmp_path / 'vis_data' / 'vis_image').glob('val_x_3.png'))


def test_read_image_png_is_rgb_and_tif_keeps_bands(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200  # red
    cv2.imwrite(str(tmp_path / 'r.png'), rgb[..., ::-1])
    np.testing.assert_array_equal(read_image(str(tmp_path / 'r.png')), rgb)
    rasterio = pytest.importorskip('rasterio')
    data = np.arange(6 * 4 * 5, dtype=np.uint16).reshape(6, 4, 5)
    with rasterio.open(tmp_path / 'm.tif', 'w', driver='GTiff', height=4, width=5, count=6,
                       dtype='uint16', crs='EPSG:32618',
                       transform=rasterio.Affine(1, 0, 0, 0, -1, 4)) as dst:
        dst.write(data)
    np.testing.assert_array_equal(read_image(str(tmp_path / 'm.tif')), np.moveaxis(data, 0, -1))


def _write_pair(root, stem) -> list[str]:
    paths = []
    for date, img in zip('AB', rgb_pair()):
        (root / date).mkdir(parents=True, exist_ok=True)
        paths.append(str(root / date / f'{stem}.png'))
        cv2.imwrite(paths[-1], img)
    return paths


@pytest.mark.parametrize('draw', [True, False])
def test_hook_writes_one_png_per_test_sample(tmp_path, draw):
    samples = [binary_sample(_write_pair(tmp_path / 'data', s)) for s in ('t_0', 't_1', 't_2')]
    make_visualizer()
    hook = HOOKS.build(dict(type='ChangeVisualizationHook', draw=draw, test_out_dir='show'))
    assert isinstance(hook, ChangeVisualizationHook)
    runner = MagicMock(work_dir=str(tmp_path / 'work'), timestamp='20240101_000000')
    hook.after_test_iter(runner, 0, {}, samples[:2])
    hook.after_test_iter(runner, 1, {}, samples[2:])
    out_dir = tmp_path / 'work' / '20240101_000000' / 'show'
    if not draw:
        assert not (tmp_path / 'work').exists()
        return
    assert sorted(p.name for p in out_dir.iterdir()) == ['t_0.png', 't_1.png', 't_2.png']
    fig = cv2.imread(str(out_dir / 't_1.png'))
    assert fig.shape[1] == 4 * W + 3 * GAP


def test_hook_val_interval_first_sample_to_backends(tmp_path):
    samples = [binary_sample(_write_pair(tmp_path / 'data', s)) for s in ('v_0', 'v_1')]
    make_visualizer(vis_backends=[dict(type='LocalVisBackend')], save_dir=str(tmp_path / 'w'))
    hook = ChangeVisualizationHook(draw=True, interval=2)
    runner = MagicMock(iter=0)
    for batch_idx in range(4):
        hook.after_val_iter(runner, batch_idx, {}, samples)
    written = sorted(p.name for p in (tmp_path / 'w' / 'vis_data' / 'vis_image').iterdir())
    assert written == ['val_v_0_0.png', 'val_v_0_2.png']


def test_registered():
    assert VISUALIZERS.get('ChangeLocalVisualizer') is ChangeLocalVisualizer
    assert HOOKS.get('ChangeVisualizationHook') is ChangeVisualizationHook


def test_hook_reads_geotiff_like_the_pipeline(tmp_path):
    """The hook reuses the pipeline's LoadBitemporalImages (band selection) found in cfg."""
    pytest.importorskip('mmrs.datasets.transforms')
    rasterio = pytest.importorskip('rasterio')
    from mmengine.config import Config
    rng = np.random.default_rng(6)
    paths = []
    for date in ('A', 'B'):
        paths.append(str(tmp_path / f'{date}_scene.tif'))
        with rasterio.open(paths[-1], 'w', driver='GTiff', height=H, width=W, count=6,
                           dtype='uint16', crs='EPSG:32618',
                           transform=rasterio.Affine(10, 0, 0, 0, -10, 0)) as dst:
            dst.write(rng.integers(100, 5000, (6, H, W), dtype=np.uint16))
    sample = binary_sample(paths)
    make_visualizer()
    hook = ChangeVisualizationHook(draw=True, test_out_dir='vis')
    pipeline = [dict(type='LoadBitemporalImages', bands=[4, 3, 2], to_float32=True),
                dict(type='PackChangeInputs')]
    runner = MagicMock(work_dir=str(tmp_path), timestamp='ts')
    runner.cfg = Config(dict(test_dataloader=dict(dataset=dict(
        type='RepeatDataset', times=2, dataset=dict(type='X', pipeline=pipeline)))))
    hook.after_test_iter(runner, 0, {}, [sample])
    assert hook._loaders['test'].bands == [4, 3, 2]
    fig = cv2.cvtColor(cv2.imread(str(tmp_path / 'ts' / 'vis' / 'A_scene.png')),
                       cv2.COLOR_BGR2RGB)
    assert fig.shape[1] == 4 * W + 3 * GAP
    with rasterio.open(paths[0]) as src:
        bands = [src.read(b).astype(np.float64) for b in (4, 3, 2)]
    expected = []
    for band in bands:
        lo, hi = np.percentile(band, (2, 98))
        expected.append(np.clip(np.round((band - lo) / (hi - lo) * 255), 0, 255))
    np.testing.assert_allclose(panel(fig, 0), np.stack(expected, -1), atol=1)


def test_hook_rejects_a_plain_visualizer():
    from mmengine.visualization import Visualizer
    Visualizer.get_instance(f'plain_{next(_names)}')
    with pytest.raises(TypeError, match='ChangeLocalVisualizer'):
        ChangeVisualizationHook(draw=True)
    ChangeVisualizationHook(draw=False)  # harmless when it will not draw
