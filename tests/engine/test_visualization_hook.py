"""``ChangeVisualizationHook`` (``--show-dir``) draws at the original size of each sample.

A 250x250 pair whose label went through ``PairedPad`` (to 256) in the test pipeline must be
drawn as 250x250 panels, with the label's boundary where it is in the file: the figure is
compared pixel by pixel with a drawing of the original label.
"""
import itertools
from pathlib import Path
from unittest.mock import MagicMock

import cv2
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData

from mmrs.datasets.transforms import (LoadChangeAnnotations, PackChangeInputs, PairedPad,
                                      PairedRandomFlip, PairedResize)
from mmrs.engine import ChangeVisualizationHook
from mmrs.visualization import (CAPTION_HEIGHT, FN_COLOR, GAP, TITLE_HEIGHT,
                                ChangeLocalVisualizer)

SIZE = 250
_names = itertools.count()


def write_files(tmp_path) -> tuple[list[str], str, np.ndarray]:
    rng = np.random.default_rng(0)
    paths = []
    for date in ('A', 'B'):
        paths.append(str(tmp_path / f'{date}_tile.png'))
        cv2.imwrite(paths[-1], rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
    label = np.zeros((SIZE, SIZE), np.uint8)
    label[:, 20:200] = 1  # the right edge at column 200 would move to ~195 if stretched
    label_path = str(tmp_path / 'label.png')
    cv2.imwrite(label_path, label * 255)
    return paths, label_path, label


def make_sample(tmp_path, steps: list) -> tuple[object, np.ndarray]:
    """A predicted sample at 250x250 whose label went through ``steps`` (pipeline grid)."""
    paths, label_path, label = write_files(tmp_path)
    img = cv2.imread(paths[0])
    results = dict(img=[img, img.copy()], img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE),
                   img_path=paths, seg_map_path=label_path, seg_fields=[])
    results = LoadChangeAnnotations()(results)
    for step in steps:
        results = step(results)
    sample = PackChangeInputs()(results)['data_samples']
    sample.pred_sem_seg = PixelData(data=torch.zeros(1, SIZE, SIZE, dtype=torch.long))
    return sample, label


def draw(tmp_path, sample) -> np.ndarray:
    ChangeLocalVisualizer.get_instance(f'hook_vis_{next(_names)}', alpha=1.0)
    hook = ChangeVisualizationHook(draw=True, test_out_dir='show')
    runner = MagicMock(work_dir=str(tmp_path / 'work'), timestamp='ts')
    hook.after_test_iter(runner, 0, {}, [sample])
    fig = cv2.imread(str(tmp_path / 'work' / 'ts' / 'show' / 'A_tile.png'))
    assert fig is not None
    return cv2.cvtColor(fig, cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize('steps', [
    lambda: [PairedPad(size_divisor=32)],
    lambda: [PairedRandomFlip(prob=1.0, direction='horizontal'), PairedPad(size=(256, 256))],
], ids=['pad', 'flip-pad'])
def test_padded_label_drawn_at_original_size(tmp_path, steps) -> None:
    sample, label = make_sample(tmp_path, steps())
    assert tuple(sample.gt_sem_seg.data.shape) == (1, 256, 256)
    fig = draw(tmp_path, sample)
    assert fig.shape[1] == 4 * SIZE + 3 * GAP
    y0 = CAPTION_HEIGHT + TITLE_HEIGHT
    gt_panel = fig[y0:y0 + SIZE, 3 * (SIZE + GAP):3 * (SIZE + GAP) + SIZE]
    missed = np.all(gt_panel == np.array(FN_COLOR), axis=-1)  # prediction is all 0
    np.testing.assert_array_equal(missed, label == 1)


def test_resized_label_is_an_error_naming_the_sample(tmp_path) -> None:
    sample, _ = make_sample(tmp_path, [PairedResize((128, 128), keep_ratio=False)])
    with pytest.raises(ValueError, match='A_tile.png.*load the annotations after'):
        draw(tmp_path, sample)


def test_loader_found_for_band_file_pipelines() -> None:
    """OSCD's pipeline loads one file per band: the hook draws with that loader."""
    from mmengine.config import Config

    from mmrs.engine.hooks.change_visualization_hook import _find_loader_cfg
    cfg = Config.fromfile(
        str(Path(__file__).resolve().parents[2] / 'configs' / '_base_' / 'datasets' / 'oscd.py'))
    step = _find_loader_cfg(cfg, 'test')
    assert step is not None and step['type'].endswith('LoadBitemporalBandFiles')
