"""``tools/test.py --show-dir`` with a rotated detector config writes the box pictures.

The CPU Rotated RetinaNet config tests a random-weight checkpoint on a 64x64 DOTA patch with
two labelled objects. ``--show-dir`` switches the config's ``mmdet.DetVisualizationHook`` on;
mmrotate's ``RotLocalVisualizer`` writes ground truth (left) and predictions (right) side by
side. Oracles: the picture's size, the ground-truth polygon's edge drawn in the left half at
its known pixels, and the box classifier bias forced up so predictions exist and are drawn.
"""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ._runner import REPO_ROOT, run_tool

NAME = 'P9999__1__0___0'
CONFIG = '''
_base_ = ['{root}/configs/rotated_retinanet/rotated_retinanet_r18_fpn_cpu_dota_samples.py']
_val = [
    dict(type='mmdet.LoadImageFromFile'),
    dict(type='mmdet.Resize', scale=(64, 64), keep_ratio=True),
    dict(type='mmdet.LoadAnnotations', with_bbox=True, box_type='qbox'),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
test_dataloader = dict(batch_size=1, dataset=dict(data_root='{data}', pipeline=_val))
'''


@pytest.fixture
def setup(tmp_path: Path) -> dict:
    data = tmp_path / 'data'
    (data / 'images').mkdir(parents=True)
    (data / 'labelTxt').mkdir()
    rng = np.random.default_rng(0)
    img = rng.integers(90, 110, size=(64, 64, 3), dtype=np.uint8)  # dull grey noise
    cv2.imwrite(str(data / 'images' / f'{NAME}.png'), img)
    (data / 'labelTxt' / f'{NAME}.txt').write_text(
        'imagesource:GoogleEarth\ngsd:0.5\n'
        '10 10 40 10 40 30 10 30 plane 0\n'  # axis-aligned: its top edge is row 10, x 10..40
        '45 40 58 47 52 58 39 51 ship 0\n')
    config = tmp_path / 'cfg.py'
    config.write_text(CONFIG.format(root=REPO_ROOT, data=data))

    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmrs.registry import MODELS
    init_default_scope('mmrs')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(config)).model)
    state = model.state_dict()
    state['bbox_head.retina_cls.bias'].fill_(3.0)  # every anchor scores ~0.95: boxes to draw
    ckpt = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': state, 'meta': {}}, ckpt)
    return dict(tmp=tmp_path, config=config, ckpt=ckpt, img=img)


def test_show_dir_draws_rotated_boxes(setup: dict) -> None:
    show = setup['tmp'] / 'show'
    run_tool('tools/test.py', str(setup['config']), str(setup['ckpt']), '--show-dir', str(show),
             '--work-dir', str(setup['tmp'] / 'work'), timeout=600)
    pictures = sorted(show.rglob('*.png'))
    assert [p.name for p in pictures] == [f'{NAME}.png']
    drawn = cv2.imread(str(pictures[0]))
    assert drawn.shape == (64, 128, 3)  # ground truth | prediction
    raw = setup['img'].astype(int)
    gt_half, pred_half = drawn[:, :64].astype(int), drawn[:, 64:].astype(int)
    diff_gt = np.abs(gt_half - raw).max(axis=2)
    # the plane's top edge (row 10, x 12..38) is drawn: strong colour change along it
    assert np.median(diff_gt[10, 12:39]) > 40
    # far from both objects (and their labels) the picture is the image
    assert diff_gt[60:, :20].max() <= 3
    # predictions are drawn on the right half
    assert (np.abs(pred_half - raw).max(axis=2) > 40).sum() > 50
