"""DOTA Task1 AP (devkit and mmrotate modes) against hand-worked cases and the originals.

Oracles, none of them mmrs code:

- small scenes whose TP/FP sequence, PR curve and AP are worked out by hand in the comments;
- the official ``dota_evaluation_task1.py`` (CAPTAIN-WHU/DOTA_devkit) exported from its git
  mirror (``MMRS_DOTA_DEVKIT``, default ``../.mirror/CAPTAIN-WHU+DOTA_devkit/repo``), with its
  SWIG ``polyiou`` replaced by a per-pair shapely polygon IoU and ``np.bool`` restored (numpy
  >= 1.24 removed it), run on the real ``dota_samples`` labels with perturbed detections;
- mmrotate 1.x's own ``eval_rbbox_map`` (process pool replaced by a serial map) on the same
  scenes.

The last two skip when their source is absent.
"""
import contextlib
import importlib.util
import io
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from mmrs.evaluation import DOTADevkitMetric
from mmrs.evaluation.dota_eval import (ClassData, devkit_class_ap, dota_map, evaluate_task1,
                                       mmrotate_class_ap, polygon_iou_pairs)
from mmrs.registry import METRICS

REPO_ROOT = Path(__file__).resolve().parents[2]
MIRRORS = REPO_ROOT.parent / '.mirror'
CLASSES = ('plane', 'ship', 'harbor')


def square(x: float, y: float, s: float = 10.) -> list[float]:
    """Axis-aligned square as a quadrilateral ``x1 y1 ... x4 y4``."""
    return [x, y, x + s, y, x + s, y + s, x, y + s]


def as_rbox(q: list[float]) -> list[float]:
    """The (axis-aligned) quadrilateral as (cx, cy, w, h, 0)."""
    xs, ys = q[0::2], q[1::2]
    return [(min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs),
            max(ys) - min(ys), 0.]


def hand_scene():
    """One class. Image 0: g0 = square(0, 0) normal, g1 = square(100, 100) difficult;
    image 1: g2 = square(0, 0) normal. npos = 2.

    Detections (score): d0 = g0 exactly (0.9) -> TP; d1 = g0 shifted by 1 px (0.8), IoU
    90/110 -> g0 already taken -> FP; d2 = g1 (0.7) -> difficult: neither; d3 = square(500,
    500) in image 0 (0.6) -> FP; d4 = g2 shifted by 1 px (0.5) -> TP.

    Cumulative (tp, fp) after each: (1,0) (1,1) (1,1) (1,2) (2,2); recall 1/2 .. 1/2, 1;
    precision 1, 1/2, 1/2, 1/3, 1/2.
    Area AP: envelope 1 up to recall 1/2, 1/2 up to recall 1 -> 1/2 * 1 + 1/2 * 1/2 = 0.75.
    VOC07: thresholds 0, .1, .2, .3, .4, .5 are reached by recall 1/2 with max precision 1;
    .6 .. 1.0 only by recall 1 with precision 1/2 -> (6 * 1 + 5 * 0.5) / 11 = 8.5 / 11.
    """
    gt_img = np.array([0, 0, 1])
    gt = np.array([square(0, 0), square(100, 100), square(0, 0)])
    difficult = np.array([False, True, False])
    det_img = np.array([0, 0, 0, 0, 1])
    dets = np.array([square(0, 0), square(1, 0), square(100, 100), square(500, 500),
                     square(0, 1)])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    return det_img, scores, dets, gt_img, gt, difficult


class TestHandComputed:

    @pytest.mark.parametrize('use_07,expected', [(True, 8.5 / 11), (False, 0.75)])
    def test_devkit(self, use_07: bool, expected: float) -> None:
        r = devkit_class_ap(*hand_scene(), iou_thr=0.5, use_07_metric=use_07)
        assert r.ap == pytest.approx(expected, abs=1e-12)
        assert r.num_gts == 2 and r.num_dets == 5
        np.testing.assert_allclose(r.precision, [1, .5, .5, 1 / 3, .5])
        np.testing.assert_allclose(r.recall, [.5, .5, .5, .5, 1])

    @pytest.mark.parametrize('use_07,expected', [(True, 8.5 / 11), (False, 0.75)])
    def test_mmrotate(self, use_07: bool, expected: float) -> None:
        det_img, scores, dets, gt_img, gt, difficult = hand_scene()
        for boxes, gboxes in ((dets, gt), ([as_rbox(q) for q in dets], [as_rbox(q) for q in gt])):
            r = mmrotate_class_ap(det_img, scores, np.array(boxes), gt_img, np.array(gboxes),
                                  difficult, 2, 0.5, use_07)
            assert r.ap == pytest.approx(expected, abs=1e-6)

    def test_voc07_thresholds_are_the_devkits_floats(self) -> None:
        # 10 objects, the first 3 detections hit: recall 0.1, 0.2, 0.3 at precision 1. The
        # devkit's fourth threshold is np.arange(0., 1.1, 0.1)[3] = 0.30000000000000004 > 3/10,
        # so only the thresholds 0, 0.1, 0.2 are reached: AP = 3/11, not 4/11.
        gt = np.array([square(20 * i, 0) for i in range(10)])
        r = devkit_class_ap(np.zeros(3), [0.9, 0.8, 0.7], gt[:3], np.zeros(10), gt,
                            np.zeros(10, bool), 0.5, True)
        assert r.ap == pytest.approx(3 / 11)

    def test_mmdet_average_precision(self) -> None:
        from mmdet.evaluation.functional import average_precision

        from mmrs.evaluation.dota_eval import mmdet_average_precision
        rng = np.random.default_rng(0)
        for _ in range(20):
            rec = np.sort(rng.random(30)) / rng.integers(1, 3)
            prec = rng.random(30).astype(np.float32)
            for use_07, mode in ((True, '11points'), (False, 'area')):
                assert mmdet_average_precision(rec, prec, use_07) == float(
                    average_precision(rec, prec, mode))

    def test_exact_match_is_ap_one(self) -> None:
        gt = np.array([square(0, 0), square(30, 0, 20), square(0, 50, 5)])
        for use_07 in (True, False):
            r = devkit_class_ap(np.zeros(3), [0.3, 0.2, 0.1], gt, np.zeros(3), gt,
                                np.zeros(3, bool), 0.5, use_07)
            assert r.ap == pytest.approx(1.0, abs=1e-12)

    def test_threshold_is_strict_in_devkit_mode(self) -> None:
        # square(0, 0, 10) against the 10 x 20 rectangle over it: IoU = 100 / 200 = 0.5 exactly
        gt = np.array([[0., 0, 10, 0, 10, 20, 0, 20]])
        det = np.array([square(0, 0)])
        assert polygon_iou_pairs(det, gt)[0] == 0.5
        assert devkit_class_ap([0], [1.], det, [0], gt, [False], 0.5).ap == 0.0
        assert devkit_class_ap([0], [1.], det, [0], gt, [False], 0.49).ap == pytest.approx(1.)
        # mmrotate matches at IoU >= 0.5
        r = mmrotate_class_ap([0], [1.], det, [0], gt, [False], 1, 0.5, True)
        assert r.ap == pytest.approx(1.)

    def test_score_ties_follow_input_order(self) -> None:
        # one object, two detections with the same score: a FP (far away) and a TP. Listed
        # FP first, np.argsort(-scores) keeps that order for two equal keys: precision at the
        # TP is 1/2 -> area AP 1/2. Listed TP first: AP 1.
        gt = np.array([square(0, 0)])
        fp_first = np.array([square(300, 300), square(0, 0)])
        r = devkit_class_ap([0, 0], [0.5, 0.5], fp_first, [0], gt, [False], 0.5, False)
        assert r.ap == pytest.approx(0.5)
        r = devkit_class_ap([0, 0], [0.5, 0.5], fp_first[::-1], [0], gt, [False], 0.5, False)
        assert r.ap == pytest.approx(1.0)

    def test_difficult_only_image(self) -> None:
        # image 0 holds only a difficult object, detected; image 1 a normal one, detected
        # with a lower score. Devkit: the first detection is neither TP nor FP -> AP 1.
        # mmrotate drops the ignored objects of an image without any other object, so the
        # first detection is a FP -> precision 1/2 at recall 1 -> AP 1/2 (area).
        gt_img, gt = np.array([0, 1]), np.array([square(0, 0), square(0, 0)])
        difficult = np.array([True, False])
        args = (np.array([0, 1]), np.array([0.9, 0.8]), gt.copy(), gt_img, gt, difficult)
        assert devkit_class_ap(*args, 0.5, False).ap == pytest.approx(1.0)
        data = [ClassData(*args)]
        assert dota_map(data, ('ship', ), 2, 0.5, 'area', 'devkit')['mAP'] == pytest.approx(1.)
        assert dota_map(data, ('ship', ), 2, 0.5, 'area', 'mmrotate')['mAP'] == pytest.approx(.5)

    def test_class_without_gt_and_without_dets(self) -> None:
        det_img, scores, dets, gt_img, gt, difficult = hand_scene()
        empty = ClassData(np.zeros(0, int), np.zeros(0), np.zeros((0, 8)), np.zeros(0, int),
                          np.zeros((0, 8)), np.zeros(0, bool))
        no_gt = ClassData(np.array([0]), np.array([0.9]), np.array([square(0, 0)]),
                          np.zeros(0, int), np.zeros((0, 8)), np.zeros(0, bool))
        data = [ClassData(det_img, scores, dets, gt_img, gt, difficult), empty, no_gt]
        dev = dota_map(data, CLASSES, 2, 0.5, 'area', 'devkit')
        # devkit: mean over the fixed class list, the two classes without objects count 0
        assert dev['AP'] == {'plane': pytest.approx(0.75), 'ship': 0.0, 'harbor': 0.0}
        assert dev['mAP'] == pytest.approx(0.75 / 3)
        # mmrotate: mean over the classes with objects only
        assert dota_map(data, CLASSES, 2, 0.5, 'area', 'mmrotate')['mAP'] == pytest.approx(.75)

    def test_bow_tie_does_not_crash(self) -> None:
        # GEOS rejects a self-intersecting ring; polyiou's winding-number definition is used.
        # Bow tie (0,0) (2,2) (2,0) (0,2): lobes of area 1 with opposite orientation, signed
        # area 0 -> with the square [0,2]^2 (winding 1): int w1 w2 = 1 - 1 = 0 -> IoU 0.
        bow = np.array([[0., 0, 2, 2, 2, 0, 0, 2]])
        assert polygon_iou_pairs(bow, np.array([square(0, 0, 2)]))[0] == pytest.approx(0.)
        rng = np.random.default_rng(0)
        q1, q2 = rng.uniform(0, 10, (200, 8)), rng.uniform(0, 10, (200, 8))
        assert np.isfinite(polygon_iou_pairs(q1, q2)).any()


def _load_devkit(tmp_path: Path):
    """Import the official dota_evaluation_task1.py with a shapely polyiou."""
    repo = Path(os.environ.get('MMRS_DOTA_DEVKIT', MIRRORS / 'CAPTAIN-WHU+DOTA_devkit' / 'repo'))
    if (repo / 'dota_evaluation_task1.py').is_file():
        text = (repo / 'dota_evaluation_task1.py').read_text()
    else:
        try:
            text = subprocess.run(['git', '-C', str(repo), 'show', 'HEAD:dota_evaluation_task1.py'],
                                  capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            pytest.skip(f'DOTA devkit not found at {repo} (set MMRS_DOTA_DEVKIT)')
    from shapely.geometry import Polygon

    def iou_poly(p, q):
        a, b = Polygon(np.reshape(p, (4, 2))), Polygon(np.reshape(q, (4, 2)))
        inter = a.intersection(b).area
        return inter / (a.area + b.area - inter)

    shim = types.ModuleType('polyiou')
    shim.VectorDouble, shim.iou_poly = list, iou_poly
    sys.modules['polyiou'] = shim
    if not hasattr(np, 'bool'):
        np.bool = bool  # removed in numpy 1.24; the devkit uses it as a dtype
    path = tmp_path / 'dota_evaluation_task1.py'
    path.write_text(text)
    spec = importlib.util.spec_from_file_location('official_dota_task1', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def devkit(tmp_path_factory):
    return _load_devkit(tmp_path_factory.mktemp('devkit'))


@pytest.fixture(scope='module')
def dota_labels() -> Path:
    from tests.conftest import shared_data_root
    root = shared_data_root() / 'dota_samples' / 'example' / 'labelTxt'
    if not root.is_dir():
        pytest.skip(f'DOTA samples not found at {root} (set MMRS_SHARED_DATA)')
    return root


def perturbed_scene(ann_dir: Path, seed: int = 0):
    """Real objects of the 7 sample labels, each detected 0-2 times as a jittered rotated
    rectangle, plus false positives; scores on a 1/20 grid so that ties are frequent."""
    import cv2

    from mmrs.datasets.dota import DOTA_CLASSES, read_dota_label
    classes = DOTA_CLASSES['v1.0']
    rng = np.random.default_rng(seed)
    names = sorted(p.stem for p in ann_dir.glob('*.txt'))
    images = []
    for name in names:
        lab = read_dota_label(str(ann_dir / f'{name}.txt'))
        rboxes, labels = [], []
        for poly, label in zip(lab['polys'], lab['labels']):
            (cx, cy), (w, h), a = cv2.minAreaRect(poly.reshape(4, 2).astype(np.float32))
            for _ in range(rng.integers(0, 3)):
                k = rng.normal(0, 0.1, 5)
                rboxes.append([cx + k[0] * w, cy + k[1] * h, w * (1 + k[2]), h * (1 + k[3]),
                               np.deg2rad(a) + 0.35 * k[4]])
                labels.append(label)
        for _ in range(5):
            x, y = rng.uniform(0, 1000, 2)
            rboxes.append([x, y, *rng.uniform(10, 60, 2), rng.uniform(-1.5, 1.5)])
            labels.append(rng.integers(len(classes)))
        scores = rng.integers(0, 20, len(labels)) / 20
        images.append(dict(name=name, lab=lab, rboxes=np.array(rboxes, np.float32),
                           labels=np.array(labels), scores=scores.astype(np.float32)))
    return classes, images


def write_task1(images, classes, out: Path) -> None:
    """Task1 files with the rotated boxes' corners (mmrotate's rbox2qbox) at full precision."""
    from mmrotate.structures.bbox import rbox2qbox
    out.mkdir()
    files = {c: [] for c in classes}
    for im in images:
        quads = rbox2qbox(torch.from_numpy(im['rboxes'].astype(np.float64))).numpy()
        for q, label, s in zip(quads, im['labels'], im['scores']):
            files[classes[label]].append(f"{im['name']} {float(s)!r} " +
                                         ' '.join(repr(float(v)) for v in q))
    for c, lines in files.items():
        (out / f'Task1_{c}.txt').write_text(''.join(line + '\n' for line in lines))


def run_devkit(devkit, det_dir: Path, ann_dir: Path, imageset: Path, classes, thr, use_07):
    aps = {}
    for c in classes:
        if (det_dir / f'Task1_{c}.txt').stat().st_size == 0:
            continue  # the devkit crashes on an empty file (IndexError)
        with contextlib.redirect_stdout(io.StringIO()), np.errstate(all='ignore'):
            aps[c] = devkit.voc_eval(str(det_dir / 'Task1_{:s}.txt'), str(ann_dir / '{:s}.txt'),
                                     str(imageset), c, ovthresh=thr, use_07_metric=use_07)[2]
    return aps


def samples_of(images, difficult_as_ignored: bool = True):
    """mmdet-style data-sample dicts: rotated predictions, quadrilateral ground truth split
    into gt_instances / ignored_instances as PackDetInputs does."""
    out = []
    for im in images:
        lab = im['lab']
        ign = lab['difficult'] > 0 if difficult_as_ignored else np.zeros(len(lab['labels']), bool)
        polys = torch.from_numpy(lab['polys'])
        labels = torch.from_numpy(lab['labels'])
        out.append(dict(
            pred_instances=dict(bboxes=torch.from_numpy(im['rboxes']),
                                scores=torch.from_numpy(im['scores']),
                                labels=torch.from_numpy(im['labels'])),
            gt_instances=dict(bboxes=polys[~ign], labels=labels[~ign]),
            ignored_instances=dict(bboxes=polys[ign], labels=labels[ign])))
    return out


class TestAgainstOfficialDevkit:

    @pytest.mark.parametrize('thr', [0.5, 0.7])
    def test_task1_files(self, devkit, dota_labels: Path, tmp_path: Path, thr: float) -> None:
        classes, images = perturbed_scene(dota_labels)
        write_task1(images, classes, tmp_path / 'dets')
        imageset = tmp_path / 'imageset.txt'
        imageset.write_text(''.join(im['name'] + '\n' for im in images))
        for metric, use_07 in (('voc07', True), ('area', False)):
            ref = run_devkit(devkit, tmp_path / 'dets', dota_labels, imageset, classes, thr,
                             use_07)
            ours = evaluate_task1(str(tmp_path / 'dets'), str(dota_labels), classes,
                                  iou_thr=thr, metric=metric)
            with_gt = [c for c in ref if ours['num_gts'][c] > 0]
            assert len(with_gt) >= 8
            for c in with_gt:  # identical numbers, not merely close
                assert ours['AP'][c] == ref[c], (c, metric, ours['AP'][c], ref[c])
            for c in set(ref) - set(with_gt):  # devkit: 0 (VOC07) or NaN (area, 0/0)
                assert ours['AP'][c] == 0.0 and (ref[c] == 0 or np.isnan(ref[c]))

    def test_metric_devkit_mode(self, devkit, dota_labels: Path, tmp_path: Path) -> None:
        classes, images = perturbed_scene(dota_labels, seed=1)
        write_task1(images, classes, tmp_path / 'dets')
        imageset = tmp_path / 'imageset.txt'
        imageset.write_text(''.join(im['name'] + '\n' for im in images))
        ref = run_devkit(devkit, tmp_path / 'dets', dota_labels, imageset, classes, 0.5, True)
        metric = METRICS.build(dict(type='DOTADevkitMetric', mode='devkit'))
        metric.dataset_meta = dict(classes=classes)
        metric.process({}, samples_of(images))
        res = metric.compute_metrics(metric.results)
        for c in ref:
            assert res[f'AP50_{c}'] == ref[c] or (np.isnan(ref[c]) and res[f'AP50_{c}'] == 0)
        assert res['mAP'] == sum(np.nan_to_num(ref.get(c, 0.)) for c in classes) / len(classes)


@pytest.fixture(scope='module')
def mmrotate_map():
    mean_ap = pytest.importorskip('mmrotate.evaluation.functional.mean_ap')

    class SerialPool:
        def __init__(self, *args) -> None:
            pass

        def starmap(self, fn, items):
            return [fn(*item) for item in items]

        def close(self) -> None:
            pass

    original = mean_ap.get_context
    mean_ap.get_context = lambda *args: types.SimpleNamespace(Pool=SerialPool)
    yield mean_ap.eval_rbbox_map
    mean_ap.get_context = original


class TestAgainstMMRotate:

    @pytest.mark.parametrize('metric,thr', [('voc07', 0.5), ('area', 0.75)])
    def test_equals_eval_rbbox_map(self, mmrotate_map, dota_labels: Path, metric: str,
                                   thr: float) -> None:
        from mmrotate.structures.bbox import qbox2rbox
        classes, images = perturbed_scene(dota_labels, seed=2)
        images[2]['lab']['difficult'][:] = 1  # a difficult-only image
        dets, annos = [], []
        for im in images:
            lab = im['lab']
            r = qbox2rbox(torch.from_numpy(lab['polys'].astype(np.float32))).numpy()
            ign = lab['difficult'] > 0
            dets.append([np.hstack([im['rboxes'][im['labels'] == c],
                                    im['scores'][im['labels'] == c, None]])
                         for c in range(len(classes))])
            annos.append(dict(bboxes=r[~ign], labels=lab['labels'][~ign], bboxes_ignore=r[ign],
                              labels_ignore=lab['labels'][ign]))
        ref_map, ref = mmrotate_map(dets, annos, iou_thr=thr, use_07_metric=metric == 'voc07',
                                    box_type='rbox', dataset=classes, logger='silent')
        m = DOTADevkitMetric(iou_thrs=thr, metric=metric, mode='mmrotate')
        m.dataset_meta = dict(classes=classes)
        m.process({}, samples_of(images))
        res = m.compute_metrics(m.results)
        tag = f'AP{int(thr * 100)}'
        assert ref_map > 0.05 and res['mAP'] == ref_map  # identical, not merely close
        assert [res[f'{tag}_{c}'] for c in classes] == [float(r['ap']) for r in ref]


class TestMetricInterface:

    def test_registered_and_options(self) -> None:
        m = METRICS.build(dict(type='DOTADevkitMetric', iou_thrs=[0.5, 0.75], metric='area'))
        assert m.iou_thrs == [0.5, 0.75] and m.prefix == 'dota'
        with pytest.raises(ValueError, match='mode'):
            DOTADevkitMetric(mode='vocish')
        with pytest.raises(ValueError, match='metric'):
            DOTADevkitMetric(metric='coco')

    def test_multi_threshold_and_empty_predictions(self) -> None:
        gt = torch.tensor([square(0, 0), square(50, 50)], dtype=torch.float64)
        sample = dict(pred_instances=dict(bboxes=torch.tensor([as_rbox(square(0, 0))]),
                                          scores=torch.tensor([0.9]),
                                          labels=torch.tensor([0])),
                      gt_instances=dict(bboxes=gt, labels=torch.tensor([0, 1])))
        empty = dict(pred_instances=dict(bboxes=torch.zeros(0, 5), scores=torch.zeros(0),
                                         labels=torch.zeros(0, dtype=torch.long)),
                     gt_instances=dict(bboxes=torch.zeros(0, 8), labels=torch.zeros(0)))
        m = DOTADevkitMetric(iou_thrs=[0.5, 0.75], metric='area')
        m.dataset_meta = dict(classes=CLASSES)
        m.process({}, [sample, empty])
        res = m.compute_metrics(m.results)
        # plane found exactly (AP 1), ship missed (0), harbor without objects (0)
        assert res['AP50_plane'] == pytest.approx(1.) and res['AP50_ship'] == 0.
        assert res['AP50'] == pytest.approx(1 / 3) and res['mAP'] == pytest.approx(1 / 3)


def test_tool_mmrotate_mode_equals_eval_rbbox_map_qbox(mmrotate_map, dota_labels: Path,
                                                      tmp_path: Path) -> None:
    """Task1 files in mmrotate mode = mmrotate's ``predict_box_type='qbox'`` evaluation."""
    from mmrs.evaluation.dota_eval import read_task1_file
    classes, images = perturbed_scene(dota_labels, seed=3)
    write_task1(images, classes, tmp_path / 'dets')
    names = [im['name'] for im in images]
    files = {c: read_task1_file(str(tmp_path / 'dets' / f'Task1_{c}.txt')) for c in classes}
    dets, annos = [], []
    for im in images:
        row = []
        for c in classes:
            ids, scores, quads = files[c]
            sel = np.array([i == im['name'] for i in ids], bool)
            row.append(np.hstack([quads[sel], scores[sel, None]]).astype(np.float32))
        dets.append(row)
        lab, ign = im['lab'], im['lab']['difficult'] > 0
        polys = lab['polys'].astype(np.float32)
        annos.append(dict(bboxes=polys[~ign], labels=lab['labels'][~ign],
                          bboxes_ignore=polys[ign], labels_ignore=lab['labels'][ign]))
    ref_map, ref = mmrotate_map(dets, annos, iou_thr=0.5, use_07_metric=True, box_type='qbox',
                                dataset=classes, logger='silent')
    ours = evaluate_task1(str(tmp_path / 'dets'), str(dota_labels), classes, names, 0.5,
                          'voc07', 'mmrotate')
    assert ref_map > 0.05 and ours['mAP'] == ref_map
    assert [ours['AP'][c] for c in classes] == [float(r['ap']) for r in ref]
