"""End to end through mmengine's Runner: testing on pairs whose size is no multiple of 32.

A tiny FC-Siam model is tested on 250x250 PNG pairs (the size of LEVIR-CD crops that broke
``tools/test.py``: ground truth padded to 256 in eval mode, predictions at 250) with
``size_divisor=32`` in the data preprocessor, once with the preprocessor padding only and
once with ``PairedPad`` in the test pipeline. The visualization hook (what ``--show-dir``
turns on) and the prediction writer run in the same test. The reference metric is counted
by hand from the written predictions and the label files.
"""
import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.runner import Runner

from mmrs.visualization import CAPTION_HEIGHT, GAP, LEGEND_HEIGHT, TITLE_HEIGHT

SIZE = 250
STEMS = ('p_0', 'p_1', 'p_2')

MODEL = dict(
    type='SiameseChangeDetector',
    data_preprocessor=dict(type='ChangeDataPreprocessor', mean=[127.5] * 3, std=[64.] * 3,
                           size_divisor=32),
    backbone=dict(type='FCSiamEncoder', in_channels=3, channels=(4, 8), num_convs=(1, 1),
                  dropout=0.0),
    neck=dict(type='FeatureFusionNeck', policy='abs_diff'),
    decode_head=dict(type='FCSiamDiffHead', in_channels=(4, 8, 8), decoder_channels=(4, 8),
                     num_convs=(2, 1), num_classes=2,
                     loss_decode=dict(type='mmseg.CrossEntropyLoss')),
    test_cfg=dict(mode='whole'))


def write_pairs(root: Path) -> None:
    """Three 250x250 pairs: date 2 differs from date 1 in a square; labels 0/255."""
    rng = np.random.default_rng(0)
    for folder in ('A', 'B', 'label'):
        (root / 'test' / folder).mkdir(parents=True)
    for i, stem in enumerate(STEMS):
        a = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        b = a.copy()
        b[40 + 20 * i:140, 60:200] = 255 - b[40 + 20 * i:140, 60:200]
        label = np.zeros((SIZE, SIZE), np.uint8)
        label[40 + 20 * i:140, 60:200] = 255
        cv2.imwrite(str(root / 'test' / 'A' / f'{stem}.png'), a)
        cv2.imwrite(str(root / 'test' / 'B' / f'{stem}.png'), b)
        cv2.imwrite(str(root / 'test' / 'label' / f'{stem}.png'), label)


def build_cfg(tmp_path: Path, pipeline_pad: bool) -> dict:
    pipeline = [dict(type='LoadBitemporalImages'), dict(type='LoadChangeAnnotations')]
    if pipeline_pad:
        pipeline.append(dict(type='PairedPad', size_divisor=32))
    pipeline.append(dict(type='PackChangeInputs'))
    return dict(
        default_scope='mmrs',
        work_dir=str(tmp_path / 'work'),
        model=copy.deepcopy(MODEL),
        test_dataloader=dict(
            batch_size=2, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(type='LEVIRCDDataset', data_root=str(tmp_path / 'data'),
                         split='test', pipeline=pipeline)),
        test_evaluator=dict(type='ChangeMetric'),
        test_cfg=dict(type='TestLoop'),
        visualizer=dict(type='ChangeLocalVisualizer', name=f'vis_any_size_{pipeline_pad}'),
        default_hooks=dict(
            visualization=dict(type='ChangeVisualizationHook', draw=True,
                               test_out_dir=str(tmp_path / 'show'))),
        custom_hooks=[dict(type='mmrs.ChangePredictionWriterHook',
                           out_dir=str(tmp_path / 'pred'))],
        log_level='WARNING',
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo')),
        randomness=dict(seed=0))


@pytest.mark.parametrize('pipeline_pad', [False, True], ids=['preprocessor-pad', 'PairedPad'])
def test_runner_tests_250px_pairs(tmp_path: Path, pipeline_pad: bool) -> None:
    torch.set_num_threads(2)
    write_pairs(tmp_path / 'data')
    runner = Runner.from_cfg(build_cfg(tmp_path, pipeline_pad))
    metrics = runner.test()

    tp = fp = fn = tn = 0
    for stem in STEMS:
        pred = cv2.imread(str(tmp_path / 'pred' / f'{stem}.png'), cv2.IMREAD_UNCHANGED)
        assert pred is not None and pred.shape == (SIZE, SIZE) and pred.dtype == np.uint8
        assert set(np.unique(pred)) <= {0, 1}
        gt = cv2.imread(str(tmp_path / 'data' / 'test' / 'label' / f'{stem}.png'),
                        cv2.IMREAD_UNCHANGED) == 255
        p = pred == 1
        tp += int(np.sum(p & gt))
        fp += int(np.sum(p & ~gt))
        fn += int(np.sum(~p & gt))
        tn += int(np.sum(~p & ~gt))
        fig = cv2.imread(str(tmp_path / 'show' / f'{stem}.png'))
        # 4 panels of the original 250 px (not the padded 256) side by side
        assert fig.shape[:2] == (CAPTION_HEIGHT + TITLE_HEIGHT + SIZE + LEGEND_HEIGHT,
                                 4 * SIZE + 3 * GAP)
    assert tp + fp + fn + tn == len(STEMS) * SIZE * SIZE
    assert metrics['oa'] == pytest.approx((tp + tn) / (tp + fp + fn + tn))
    assert metrics['f1'] == pytest.approx(2 * tp / max(2 * tp + fp + fn, 1))


def test_runner_writes_georeferenced_predictions_with_nodata(tmp_path: Path) -> None:
    """250x250 GeoTIFF pairs with a nodata collar: the written predictions are GeoTIFFs on
    the source grid (CRS, transform), 255 where either date is nodata, 0/1 elsewhere."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import Affine

    torch.set_num_threads(2)
    root = tmp_path / 'data'
    write_pairs(root)
    transform = Affine(0.5, 0.0, 300000.0, 0.0, -0.5, 5000000.0)
    collar = np.zeros((SIZE, SIZE), bool)
    collar[:, :17] = True  # nodata in date 1
    collar[-9:, :] = True  # nodata in date 2
    for stem in STEMS:
        for date, mask in (('A', np.s_[:, :17]), ('B', np.s_[-9:, :])):
            png = root / 'test' / date / f'{stem}.png'
            img = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB)
            img = np.maximum(img, 1)  # 0 only in the collar
            img[mask] = 0
            with rasterio.open(png.with_suffix('.tif'), 'w', driver='GTiff', height=SIZE,
                               width=SIZE, count=3, dtype='uint8', crs='EPSG:32631',
                               transform=transform, nodata=0) as dst:
                dst.write(np.moveaxis(img, -1, 0))
            png.unlink()
    cfg = build_cfg(tmp_path, pipeline_pad=True)
    cfg['test_dataloader']['dataset']['img_suffix'] = '.tif'
    cfg['visualizer']['name'] = 'vis_any_size_geotiff'
    runner = Runner.from_cfg(cfg)
    runner.test()
    for stem in STEMS:
        with rasterio.open(tmp_path / 'pred' / f'{stem}.tif') as src:
            assert src.crs == CRS.from_epsg(32631) and src.transform == transform
            assert src.nodata == 255 and (src.height, src.width) == (SIZE, SIZE)
            values = src.read(1)
        assert (values[collar] == 255).all()
        assert set(np.unique(values[~collar])) <= {0, 1}
