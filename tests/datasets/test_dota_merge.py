"""Merging DOTA patch detections into scenes (``mmrs.datasets.dota_merge``, merge tool).

Oracles: hand-computed scene coordinates and IoUs of squares, the proof that mmcv's CPU
``nms_rotated`` suppresses across classes, and the official devkit's
``ResultMerge_multi_process.py`` (its ``polyiou`` replaced by a shapely shim) on the same files.
"""
import importlib
import importlib.util
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from mmrs.datasets.dota_merge import (classwise_nms, classwise_nms_rotated, merge_patch_results,
                                      merge_task1, patch_to_scene, poly_nms, read_task1,
                                      write_task1)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEVKIT = REPO_ROOT.parent / '.mirror' / 'CAPTAIN-WHU+DOTA_devkit' / 'repo'


def _square(x: float, y: float, s: float = 2.0) -> list[float]:
    return [x, y, x + s, y, x + s, y + s, x, y + s]


def test_patch_to_scene() -> None:
    q = np.array([[10, 20, 30, 20, 30, 40, 10, 40]], float)
    np.testing.assert_allclose(patch_to_scene(q, 100, 50, 0.5),
                               [[220, 140, 260, 140, 260, 180, 220, 180]])
    r = np.array([[10, 20, 8, 4, 0.3]])
    np.testing.assert_allclose(patch_to_scene(r, 100, 50, 2.0), [[55, 35, 4, 2, 0.3]])
    with pytest.raises(ValueError, match=r'\(N, 8\)'):
        patch_to_scene(np.zeros((1, 6)), 0, 0)


class TestNMS:

    def test_mmcv_cpu_ignores_labels_and_classwise_fixes_it(self) -> None:
        from mmcv.ops import nms_rotated
        # mmrs.models.ops wraps the op with a class-aware CPU path; the raw kernel is kept
        # as __wrapped__
        raw_nms_rotated = getattr(nms_rotated, '__wrapped__', nms_rotated)
        boxes = np.array([[10, 10, 10, 5, 0.0], [10.5, 10, 10, 5, 0.05]], np.float32)
        scores = np.array([0.9, 0.8], np.float32)
        args = (torch.from_numpy(boxes), torch.from_numpy(scores), 0.1, torch.tensor([0, 1]))
        _, keep = raw_nms_rotated(*args)
        assert keep.tolist() == [0]  # the other class's box was suppressed: the bug
        import mmrs.models  # noqa: F401  (installs the class-aware CPU path)
        from mmcv import ops
        assert sorted(ops.nms_rotated(*args)[1].tolist()) == [0, 1]
        assert classwise_nms_rotated(boxes, scores, [0, 1]).tolist() == [0, 1]
        assert classwise_nms_rotated(boxes, scores, [1, 1]).tolist() == [0]

    def test_poly_nms_strictly_greater(self) -> None:
        # [0,2]^2 and [1,3]x[0,2]: intersection 2, union 6 -> IoU 1/3
        polys = np.array([_square(0, 0), _square(1, 0), _square(10, 10)])
        scores = np.array([0.5, 0.9, 0.7])
        assert poly_nms(polys, scores, 0.1).tolist() == [1, 2]
        assert poly_nms(polys, scores, 1 / 3).tolist() == [1, 2, 0]  # IoU == thr is kept
        assert classwise_nms(polys, scores, [0, 1, 0], 0.1, 'poly').tolist() == [1, 2, 0]

    def test_rotated_equals_poly_on_rectangles(self) -> None:
        rng = np.random.default_rng(3)
        cx, cy = rng.uniform(0, 60, 80), rng.uniform(0, 60, 80)
        w, h = rng.uniform(4, 20, 80), rng.uniform(4, 20, 80)
        polys = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy - h / 2, cx + w / 2,
                          cy + h / 2, cx - w / 2, cy + h / 2], 1)
        scores, labels = rng.random(80), rng.integers(0, 3, 80)
        poly_keep = classwise_nms(polys, scores, labels, 0.1, 'poly')
        rot_keep = classwise_nms(polys, scores, labels, 0.1, 'rotated')
        assert set(poly_keep.tolist()) == set(rot_keep.tolist())
        assert 10 < len(poly_keep) < 80
        with pytest.raises(ValueError, match='nms must be one of'):
            classwise_nms(polys, scores, labels, 0.1, 'hbb')


def test_merge_patch_results() -> None:
    # one object seen on a rate-1 patch at (100, 0) and on a rate-0.5 patch at (0, 0)
    results = [
        dict(img_id='P9__1__100___0', bboxes=np.array([[20, 30, 40, 10, 0.0]]),
             scores=np.array([0.9]), labels=np.array([2])),
        dict(img_id='P9__0.5__0___0', bboxes=np.array([[60, 15, 20, 5, 0.0], [60, 15, 20, 5, 0]]),
             scores=np.array([0.6, 0.5]), labels=np.array([2, 4])),
        dict(img_id='P7__1__0___0', bboxes=np.zeros((0, 5)), scores=np.zeros(0),
             labels=np.zeros(0))]
    merged = merge_patch_results(results, nms='rotated')
    assert set(merged) == {'P9', 'P7'} and len(merged['P7']['scores']) == 0
    np.testing.assert_allclose(merged['P9']['bboxes'], [[120, 30, 40, 10, 0], [120, 30, 40, 10, 0]])
    assert merged['P9']['labels'].tolist() == [2, 4]
    np.testing.assert_allclose(merged['P9']['scores'], [0.9, 0.5])
    with pytest.raises(ValueError, match="'P9' is not a DOTA patch name"):
        merge_patch_results([dict(img_id='P9', bboxes=np.zeros((0, 5)), scores=[], labels=[])])


class TestTask1:

    def test_roundtrip_and_errors(self, tmp_path: Path) -> None:
        dets = {'plane': (['a', 'b'], np.array([0.5, 0.25]), np.arange(16.).reshape(2, 8))}
        write_task1(str(tmp_path), dets, classes=['ship', 'plane'])
        assert (tmp_path / 'Task1_ship.txt').read_text() == ''
        back = read_task1(str(tmp_path))
        assert back['plane'][0] == ['a', 'b']
        np.testing.assert_array_equal(back['plane'][2], dets['plane'][2])
        (tmp_path / 'Task1_ship.txt').write_text('a 0.5 1 2 3 4 5 6 7\n')
        with pytest.raises(ValueError, match=r"Task1_ship.txt' line 1: expected"):
            read_task1(str(tmp_path))
        (tmp_path / 'Task1_ship.txt').write_text('\na 0.5 1 2 3 4 5 6 7 x\n')
        with pytest.raises(ValueError, match=r"line 2: score and coordinates must be numbers"):
            read_task1(str(tmp_path))
        (tmp_path / 'empty').mkdir()
        with pytest.raises(FileNotFoundError, match='no Task1_'):
            read_task1(str(tmp_path / 'empty'))

    def test_merge_task1_and_cli(self, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
        src = tmp_path / 'patches'
        src.mkdir()
        (src / 'Task1_plane.txt').write_text(
            'S__1__100___0 0.9 0 0 20 0 20 20 0 20\n'
            'S__0.5__0___0 0.8 50 0 60 0 60 10 50 10\n'   # the same plane at half size
            'S__1__0___0 0.7 300 300 310 300 310 310 300 310\n')
        (src / 'Task1_ship.txt').write_text('S__1__100___0 0.4 0 0 20 0 20 20 0 20\n')
        spec = importlib.util.spec_from_file_location(
            'dota_merge_tool', REPO_ROOT / 'tools' / 'data' / 'dota' / 'merge.py')
        tool = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tool)
        assert tool.main(['--det-dir', str(src), '--out-dir', str(tmp_path / 'out'),
                          '--version', 'v1.0']) == 0
        out = tmp_path / 'out'
        assert len(os.listdir(out)) == 15
        assert (out / 'Task1_plane.txt').read_text().splitlines() == [
            'S 0.9 100.0 0.0 120.0 0.0 120.0 20.0 100.0 20.0',
            'S 0.7 300.0 300.0 310.0 300.0 310.0 310.0 300.0 310.0']
        assert (out / 'Task1_ship.txt').read_text().splitlines() == [
            'S 0.4 100.0 0.0 120.0 0.0 120.0 20.0 100.0 20.0']  # other class: kept
        assert tool.main(['--det-dir', str(tmp_path / 'none'), '--out-dir', str(out)]) == 1
        assert 'detection folder not found' in capsys.readouterr().err


def test_equals_devkit_result_merge(tmp_path: Path) -> None:
    """ResultMerge_multi_process.mergebase(py_cpu_nms_poly_fast) vs merge_task1(nms='poly')."""
    if not DEVKIT.is_dir():
        pytest.skip('DOTA devkit mirror not available')
    import shapely
    text = subprocess.run(['git', '-C', str(DEVKIT), 'show', 'HEAD:ResultMerge_multi_process.py'],
                          check=True, capture_output=True, text=True).stdout
    utils = subprocess.run(['git', '-C', str(DEVKIT), 'show', 'HEAD:dota_utils.py'], check=True,
                           capture_output=True, text=True).stdout
    (tmp_path / 'dev').mkdir()
    (tmp_path / 'dev' / 'ResultMerge_multi_process.py').write_text(text)
    (tmp_path / 'dev' / 'dota_utils.py').write_text(utils)

    def iou_poly(a: list, b: list) -> float:
        pa, pb = (shapely.Polygon(np.reshape(p, (4, 2))) for p in (a, b))
        inter = pa.intersection(pb).area
        return inter / (pa.area + pb.area - inter)

    shim = types.ModuleType('polyiou')
    shim.VectorDouble, shim.iou_poly = list, iou_poly
    rng = np.random.default_rng(0)
    src = tmp_path / 'det'
    src.mkdir()
    for cls in ('plane', 'ship'):
        lines = []
        for _ in range(150):
            rate = rng.choice(['0.5', '1', '1.5'])
            x, y = rng.integers(0, 3, 2) * 300
            name = f'P{rng.integers(0, 2)}__{rate}__{x}___{y}'
            c, s, a = rng.uniform(0, 400, 2), rng.uniform(5, 40, 2), rng.uniform(0, np.pi)
            rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
            corners = (np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * s / 2) @ rot.T + c
            lines.append(f'{name} {rng.random():.4f} '
                         + ' '.join(f'{v:.1f}' for v in corners.ravel()))
        (src / f'Task1_{cls}.txt').write_text('\n'.join(lines) + '\n')
    sys.modules['polyiou'] = shim
    sys.path.insert(0, str(tmp_path / 'dev'))
    try:
        merge = importlib.import_module('ResultMerge_multi_process')
        (tmp_path / 'a').mkdir()
        merge.mergebase(str(src), str(tmp_path / 'a'), merge.py_cpu_nms_poly_fast)
    finally:
        sys.path.remove(str(tmp_path / 'dev'))
        for m in ('polyiou', 'ResultMerge_multi_process', 'dota_utils'):
            sys.modules.pop(m, None)
    assert merge.nms_thresh == 0.1
    merge_task1(str(src), str(tmp_path / 'b'), iou_thr=0.1, nms='poly')
    kept = 0
    for cls in ('plane', 'ship'):
        a, b = ([line.split() for line in (tmp_path / d / f'Task1_{cls}.txt').read_text()
                 .splitlines()] for d in 'ab')
        # same detections in the same order (scenes first-seen, scores descending)
        assert [r[0] for r in a] == [r[0] for r in b]
        np.testing.assert_allclose(np.float64([r[1:] for r in a]), np.float64([r[1:] for r in b]),
                                   rtol=0, atol=1e-9)
        kept += len(a)
    assert 100 < kept < 300  # NMS removed some of the 300, not all
