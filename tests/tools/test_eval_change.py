"""Tests of tools/analysis/eval_change.py, run as a user would (subprocess from the repo root).

The JSON it prints is compared with torchmetrics on the same binarised masks, with
ChangeMetric fed the same arrays and with a count done by hand; error cases
check the exit status, that the message names the offending files and that ``--out`` is not
written. Each subprocess pays the ``import mmrs`` start-up (seconds on a loaded machine), so
the CLI runs once per format (PNG, GeoTIFF) plus one error exit (missing file); the other
cases call ``main()`` in-process.
"""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine
from torchmetrics.functional.classification import (binary_accuracy, binary_cohen_kappa,
                                                    binary_f1_score, binary_jaccard_index,
                                                    binary_precision, binary_recall)

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / 'tools' / 'analysis' / 'eval_change.py'
TOL = 1e-6
SHAPES = [(20, 30), (16, 16), (25, 12)]


def write_geotiff(path: Path, mask: np.ndarray) -> None:
    """Single-band uint8 GeoTIFF in UTM 33N with a 10 m grid."""
    with rasterio.open(path, 'w', driver='GTiff', height=mask.shape[0], width=mask.shape[1],
                       count=1, dtype='uint8', crs='EPSG:32633',
                       transform=Affine(10, 0, 500000, 0, -10, 4000000)) as dst:
        dst.write(mask.astype(np.uint8), 1)


def write_mask(path: Path, mask: np.ndarray) -> None:
    if path.suffix in ('.tif', '.tiff'):
        write_geotiff(path, mask)
    else:
        assert cv2.imwrite(str(path), mask.astype(np.uint8))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def torchmetrics_scores(preds: list[np.ndarray], gts: list[np.ndarray]) -> dict[str, float]:
    p = torch.from_numpy(np.concatenate([x.ravel() for x in preds]).astype(np.int64))
    t = torch.from_numpy(np.concatenate([x.ravel() for x in gts]).astype(np.int64))
    return {
        'precision': binary_precision(p, t).item(), 'recall': binary_recall(p, t).item(),
        'f1': binary_f1_score(p, t).item(), 'iou': binary_jaccard_index(p, t).item(),
        'oa': binary_accuracy(p, t).item(), 'kappa': binary_cohen_kappa(p, t).item(),
    }


@pytest.fixture
def mask_pairs() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Random binary (0/1) predictions and ground truths of different sizes."""
    rng = np.random.default_rng(3)
    gts = [(rng.random(s) < 0.3).astype(np.uint8) for s in SHAPES]
    preds = [np.where(rng.random(s) < 0.2, 1 - g, g).astype(np.uint8) for s, g in
             zip(SHAPES, gts)]
    return preds, gts


def make_folders(root: Path, preds: list, gts: list, pred_ext: str, gt_ext: str,
                 pred_scale: int = 255, gt_scale: int = 255) -> tuple[Path, Path]:
    pred_dir, gt_dir = root / 'pred', root / 'gt'
    pred_dir.mkdir()
    gt_dir.mkdir()
    for i, (p, g) in enumerate(zip(preds, gts)):
        write_mask(pred_dir / f'tile_{i}{pred_ext}', p * pred_scale)
        write_mask(gt_dir / f'tile_{i}{gt_ext}', g * gt_scale)
    return pred_dir, gt_dir


def load_tool():
    spec = importlib.util.spec_from_file_location('eval_change_tool', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestEvalChangeCLI:

    def test_png_folders(self, tmp_path, mask_pairs) -> None:
        preds, gts = mask_pairs
        # predictions saved as 0/1, ground truth as 0/255 (LEVIR-CD style)
        pred_dir, gt_dir = make_folders(tmp_path, preds, gts, '.png', '.png', pred_scale=1)
        out = tmp_path / 'res' / 'metrics.json'
        proc = run_cli('--pred', str(pred_dir), '--gt', str(gt_dir), '--out', str(out))
        assert proc.returncode == 0, proc.stderr
        printed = json.loads(proc.stdout)
        assert printed == json.loads(out.read_text())
        assert printed['num_images'] == 3
        for key, value in torchmetrics_scores(preds, gts).items():
            assert printed[key] == pytest.approx(value, abs=TOL), key

    def test_geotiff_folders(self, tmp_path, mask_pairs) -> None:
        preds, gts = mask_pairs
        pred_dir, gt_dir = make_folders(tmp_path, preds, gts, '.tif', '.tiff')
        with rasterio.open(next(gt_dir.glob('*.tiff'))) as src:
            assert src.crs is not None
        proc = run_cli('--pred', str(pred_dir), '--gt', str(gt_dir), '--pred-encoding', '0/255')
        assert proc.returncode == 0, proc.stderr
        printed = json.loads(proc.stdout)
        assert printed['num_images'] == 3
        for key, value in torchmetrics_scores(preds, gts).items():
            assert printed[key] == pytest.approx(value, abs=TOL), key

    def test_missing_counterpart_names_file(self, tmp_path, mask_pairs) -> None:
        preds, gts = mask_pairs
        pred_dir, gt_dir = make_folders(tmp_path, preds, gts, '.png', '.png')
        (gt_dir / 'tile_2.png').unlink()
        write_mask(gt_dir / 'extra.tif', gts[0])
        out = tmp_path / 'metrics.json'
        proc = run_cli('--pred', str(pred_dir), '--gt', str(gt_dir), '--out', str(out))
        assert proc.returncode == 1
        assert 'tile_2.png' in proc.stderr and 'extra.tif' in proc.stderr
        assert proc.stdout == '' and not out.exists()


class TestEvalChangeInProcess:

    @pytest.fixture(scope='class')
    def tool(self):
        return load_tool()

    def test_png_prediction_matches_geotiff_ground_truth(self, tool, tmp_path, mask_pairs,
                                                         capsys) -> None:
        preds, gts = mask_pairs
        pred_dir, gt_dir = make_folders(tmp_path, preds, gts, '.png', '.tif', pred_scale=1)
        assert tool.main(['--pred', str(pred_dir), '--gt', str(gt_dir)]) == 0
        printed = json.loads(capsys.readouterr().out)
        for key, value in torchmetrics_scores(preds, gts).items():
            assert printed[key] == pytest.approx(value, abs=TOL), key

    def test_duplicate_stem(self, tool, tmp_path, mask_pairs, capsys) -> None:
        preds, gts = mask_pairs
        pred_dir, gt_dir = make_folders(tmp_path, preds, gts, '.png', '.png')
        write_mask(pred_dir / 'tile_0.tif', preds[0])
        assert tool.main(['--pred', str(pred_dir), '--gt', str(gt_dir)]) == 1
        err = capsys.readouterr().err
        assert 'tile_0.png' in err and 'tile_0.tif' in err

    def test_size_mismatch_names_both_files(self, tool, tmp_path, mask_pairs, capsys) -> None:
        preds, gts = mask_pairs
        pred_dir, gt_dir = make_folders(tmp_path, preds, gts, '.png', '.tif')
        write_mask(pred_dir / 'tile_1.png', np.zeros((9, 7), np.uint8))
        out = tmp_path / 'metrics.json'
        code = tool.main(['--pred', str(pred_dir), '--gt', str(gt_dir), '--out', str(out)])
        captured = capsys.readouterr()
        assert code == 1
        assert 'tile_1.png' in captured.err and 'tile_1.tif' in captured.err
        assert '(9, 7)' in captured.err and '(16, 16)' in captured.err
        assert captured.out == '' and not out.exists()

    def test_empty_folder(self, tool, tmp_path, capsys) -> None:
        (tmp_path / 'pred').mkdir()
        (tmp_path / 'gt').mkdir()
        assert tool.main(['--pred', str(tmp_path / 'pred'), '--gt', str(tmp_path / 'gt')]) == 1
        assert 'contains no mask' in capsys.readouterr().err

    def test_unreadable_file(self, tool, tmp_path, mask_pairs, capsys) -> None:
        preds, gts = mask_pairs
        pred_dir, gt_dir = make_folders(tmp_path, preds, gts, '.png', '.tif')
        (gt_dir / 'tile_0.tif').write_bytes(b'not a tiff')
        out = tmp_path / 'm.json'
        code = tool.main(['--pred', str(pred_dir), '--gt', str(gt_dir), '--out', str(out)])
        assert code == 1 and not out.exists()
        assert 'tile_0.tif' in capsys.readouterr().err

    def test_multichannel_with_different_bands(self, tool, tmp_path, mask_pairs,
                                               capsys) -> None:
        preds, gts = mask_pairs
        pred_dir, gt_dir = make_folders(tmp_path, preds, gts, '.png', '.png')
        rgb = np.zeros(SHAPES[0] + (3, ), np.uint8)
        rgb[..., 1] = 255
        cv2.imwrite(str(pred_dir / 'tile_0.png'), rgb)
        assert tool.main(['--pred', str(pred_dir), '--gt', str(gt_dir)]) == 1
        assert 'tile_0.png' in capsys.readouterr().err

    def test_equal_bands_accepted(self, tool, tmp_path, mask_pairs, capsys) -> None:
        preds, gts = mask_pairs
        pred_dir, gt_dir = make_folders(tmp_path, preds, gts, '.png', '.png')
        cv2.imwrite(str(pred_dir / 'tile_0.png'), np.repeat(preds[0][..., None] * 255, 3, -1))
        assert tool.main(['--pred', str(pred_dir), '--gt', str(gt_dir),
                          '--pred-encoding', '0/255']) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed['f1'] == pytest.approx(torchmetrics_scores(preds, gts)['f1'], abs=TOL)

    def test_equals_change_metric_and_a_hand_count(self, tool, tmp_path, capsys) -> None:
        """Prediction 0/1/255 (255 = nodata), ground truth 0/255 (LEVIR-CD style)."""
        from mmrs.evaluation import ChangeMetric
        pred = np.array([[1, 1, 0], [0, 255, 1]], np.uint8)
        gt = np.array([[255, 0, 0], [255, 255, 0]], np.uint8)
        (tmp_path / 'p').mkdir()
        (tmp_path / 'g').mkdir()
        write_mask(tmp_path / 'p' / 'a.png', pred)
        write_mask(tmp_path / 'g' / 'a.tif', gt)
        assert tool.main(['--pred', str(tmp_path / 'p'), '--gt', str(tmp_path / 'g')]) == 0
        printed = json.loads(capsys.readouterr().out)
        # by hand, (1, 1) not predicted: TP (0,0); FP (0,1), (1,2); FN (1,0); TN (0,2)
        tp, fp, fn, tn = 1, 2, 1, 1
        n = tp + fp + fn + tn
        pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / n ** 2
        hand = dict(precision=1 / 3, recall=1 / 2, f1=0.4, iou=1 / 4, iou_unchanged=1 / 4,
                    miou=1 / 4, oa=2 / 5, kappa=(2 / 5 - pe) / (1 - pe))
        for key, value in hand.items():
            assert printed[key] == pytest.approx(value, abs=TOL), key
        # ChangeMetric as tools/test.py runs it: ground truth ignored at nodata pixels
        metric = ChangeMetric()
        metric.process(None, [dict(pred_sem_seg=dict(data=torch.tensor([[[1, 1, 0], [0, 0, 1]]])),
                                   gt_sem_seg=dict(data=torch.tensor([[[1, 0, 0], [1, 255, 0]]])))])
        for key, value in metric.compute_metrics(metric.results).items():
            assert printed[key] == pytest.approx(value, abs=TOL), key

    def test_no_change_tile_of_an_ignore_encoded_dataset(self, tool, tmp_path, capsys) -> None:
        """A {0, 1, 255 = ignore} ground-truth tile without change stays without change."""
        (tmp_path / 'p').mkdir()
        (tmp_path / 'g').mkdir()
        gt = np.zeros((4, 4), np.uint8)
        gt[:, :2] = 255  # ignored half, no changed pixel
        write_mask(tmp_path / 'g' / 'a.png', gt)
        write_mask(tmp_path / 'p' / 'a.png', np.zeros((4, 4), np.uint8))
        assert tool.main(['--pred', str(tmp_path / 'p'), '--gt', str(tmp_path / 'g'),
                          '--gt-encoding', '0/1/255']) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed['oa'] == 1.0 and printed['iou_unchanged'] == 1.0

    def test_value_outside_the_encoding_names_file(self, tool, tmp_path, mask_pairs,
                                                   capsys) -> None:
        preds, gts = mask_pairs
        pred_dir, gt_dir = make_folders(tmp_path, preds, gts, '.png', '.png', pred_scale=1,
                                        gt_scale=1)  # 0/1 ground truth, default 0/255
        out = tmp_path / 'm.json'
        code = tool.main(['--pred', str(pred_dir), '--gt', str(gt_dir), '--out', str(out)])
        err = capsys.readouterr().err
        assert code == 1 and not out.exists()
        assert 'tile_0.png' in err and "'0/255'" in err
        assert tool.main(['--pred', str(pred_dir), '--gt', str(gt_dir),
                          '--gt-encoding', '0/1']) == 0

    def test_palette_png_prediction_gives_indices(self, tool, tmp_path, mask_pairs,
                                                  capsys) -> None:
        from PIL import Image
        preds, gts = mask_pairs
        pred_dir, gt_dir = make_folders(tmp_path, preds, gts, '.png', '.png')
        for i, p in enumerate(preds):  # 0/1 indices, shown as black / red
            img = Image.fromarray(p, mode='P')
            img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
            img.save(pred_dir / f'tile_{i}.png')
        assert tool.main(['--pred', str(pred_dir), '--gt', str(gt_dir)]) == 0
        printed = json.loads(capsys.readouterr().out)
        for key, value in torchmetrics_scores(preds, gts).items():
            assert printed[key] == pytest.approx(value, abs=TOL), key

    def test_threshold_encoding(self, tool, tmp_path, mask_pairs, capsys) -> None:
        preds, gts = mask_pairs
        pred_dir, gt_dir = make_folders(tmp_path, preds, gts, '.png', '.png', pred_scale=200,
                                        gt_scale=250)
        assert tool.main(['--pred', str(pred_dir), '--gt', str(gt_dir), '--pred-encoding',
                          'threshold', '--gt-encoding', 'threshold', '--threshold', '150']) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed['f1'] == pytest.approx(torchmetrics_scores(preds, gts)['f1'], abs=TOL)
