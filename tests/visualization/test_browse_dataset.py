"""tools/analysis/browse_dataset.py on a tiny generated LEVIR-CD-style dataset."""
import importlib.util
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mmrs.visualization import (CAPTION_HEIGHT, CHANGE_COLOR, GAP, LEGEND_HEIGHT,
                                TITLE_HEIGHT)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, 'tools', 'analysis', 'browse_dataset.py')
CROP_H, CROP_W = 32, 48

CONFIG = """
default_scope = 'mmrs'
pipeline = [
    dict(type='LoadBitemporalImages'),
    dict(type='LoadChangeAnnotations'),
    dict(type='PairedRandomCrop', crop_size=({h}, {w})),
    dict(type='PairedRandomFlip', prob=0.5),
    dict(type='PackChangeInputs'),
]
train_dataloader = dict(dataset=dict(
    type='LEVIRCDDataset', data_root={root!r}, split=None, pipeline=pipeline))
val_dataloader = dict(dataset=dict(
    type='LEVIRCDDataset', data_root={root!r}, split=None, pipeline=pipeline[:2] + [pipeline[-1]]))
"""


def make_dataset(root, n: int = 3) -> list[str]:
    """``n`` 40×56 RGB pairs whose label is one changed square (0/255 PNG)."""
    rng = np.random.default_rng(0)
    stems = [f'tile_{i}' for i in range(n)]
    for sub in ('A', 'B', 'label'):
        (root / sub).mkdir(parents=True)
    for stem in stems:
        for sub in ('A', 'B'):
            cv2.imwrite(str(root / sub / f'{stem}.png'),
                        rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
        label = np.zeros((40, 56), np.uint8)
        label[10:30, 15:40] = 255
        cv2.imwrite(str(root / 'label' / f'{stem}.png'), label)
    return stems


def run_browse(tmp_path, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    env.pop('DISPLAY', None)
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_browse_dataset_writes_transformed_panels(tmp_path, monkeypatch):
    pytest.importorskip('mmrs.datasets', reason='mmrs.datasets not available yet')
    from mmrs import datasets
    if not hasattr(datasets, 'LEVIRCDDataset'):
        pytest.skip('mmrs.datasets.LEVIRCDDataset not available yet')
    stems = make_dataset(tmp_path / 'data')
    cfg = tmp_path / 'tiny_cfg.py'
    cfg.write_text(CONFIG.format(root=str(tmp_path / 'data'), h=CROP_H, w=CROP_W))

    out = tmp_path / 'vis_train'
    proc = run_browse(tmp_path, cfg, '--output-dir', out, '--num', 2, '--not-show')
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == [f'0000_{stems[0]}.png', f'0001_{stems[1]}.png']  # --num, index + stem
    fig = cv2.cvtColor(cv2.imread(str(out / names[0])), cv2.COLOR_BGR2RGB)
    # date 1 | date 2 | ground truth, at the size *after* the random crop
    assert fig.shape == (CAPTION_HEIGHT + TITLE_HEIGHT + CROP_H + LEGEND_HEIGHT,
                         3 * CROP_W + 2 * GAP, 3)
    gt_panel = fig[CAPTION_HEIGHT + TITLE_HEIGHT:CAPTION_HEIGHT + TITLE_HEIGHT + CROP_H,
                   2 * (CROP_W + GAP):]
    date2 = fig[CAPTION_HEIGHT + TITLE_HEIGHT:CAPTION_HEIGHT + TITLE_HEIGHT + CROP_H,
                CROP_W + GAP:2 * CROP_W + GAP]
    changed = np.any(gt_panel != date2, axis=-1)
    assert changed.any() and not changed.all()  # the label square is overlaid, partly
    blend = np.round(0.4 * date2[changed] + 0.6 * np.array(CHANGE_COLOR))
    np.testing.assert_allclose(gt_panel[changed], blend, atol=1)

    # --split picks val_dataloader (no crop: full 40×56 images); without --output-dir and
    # without a display it writes to the default folder instead of opening windows. Run
    # in-process: a second interpreter would pay the OpenMMLab import time again.
    monkeypatch.delenv('DISPLAY', raising=False)
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location('browse_dataset', SCRIPT)
    browse = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(browse)
    with pytest.warns(UserWarning, match='no display'):
        browse.main([str(cfg), '--split', 'val', '--num', '5'])
    default_dir = tmp_path / 'work_dirs' / 'browse_dataset' / 'tiny_cfg'
    figs = sorted(default_dir.iterdir())
    assert len(figs) == 3  # --num is capped by the dataset length
    assert cv2.imread(str(figs[0])).shape[1] == 3 * 56 + 2 * GAP
