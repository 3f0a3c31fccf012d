"""Tests of RotatedBoxTextMetric: mAP_nc and both mean F1 definitions.

Expected values are computed by hand in the comments (axis-aligned boxes, so every IoU is a
ratio of rectangle areas), and mAP_nc is compared with mmrotate's own ``eval_rbbox_map`` run
with every score set to 1 (LMMRotate's protocol) on data small enough for numpy's tie order to
be the stable one.
"""
import itertools
import math
from pathlib import Path
from types import SimpleNamespace

import cv2

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData
from mmrotate.evaluation.functional import eval_rbbox_map, mean_ap

from mmrs.evaluation.metrics.rbox_text_metric import (RotatedBoxTextMetric, f1_greedy,
                                                      f1_lmmrotate, lmmrotate_confusion_matrix,
                                                      map_no_confidence)
from mmrs.registry import METRICS
from mmrs.structures.box_text import RotatedBoxTextCodec

CLASSES = ('plane', 'ship')


class InlinePool:
    """Stands in for the spawn pool of ``eval_rbbox_map`` (spawning costs ~20 s a call)."""

    def __init__(self, processes: int) -> None:
        pass

    def starmap(self, func, iterable):
        return list(itertools.starmap(func, iterable))

    def close(self) -> None:
        pass


def image(dets=(), det_labels=(), gts=(), gt_labels=(), ign=(), ign_labels=(),
          scores=None) -> dict:
    def arr(x):
        return np.asarray(x, dtype=np.float64).reshape(-1, 5)
    return dict(det_boxes=arr(dets), det_labels=np.asarray(det_labels, np.int64),
                det_scores=None if scores is None else np.asarray(scores, np.float64),
                gt_boxes=arr(gts), gt_labels=np.asarray(gt_labels, np.int64),
                ignored_boxes=arr(ign), ignored_labels=np.asarray(ign_labels, np.int64))


def box(cx: float, cy: float, w: float = 10.0, h: float = 10.0, t: float = 0.0) -> list:
    return [cx, cy, w, h, t]


G1, G2, G3 = box(5, 5), box(50, 50), box(100, 100)
D_SHIFT = box(6, 5)  # IoU with G1: 9*10 / (200 - 90) = 0.818
FAR = box(300, 300)


class TestMapNoConfidence:

    def test_hand_computed_voc07_and_area(self) -> None:
        # class 0; image A: G1, G2 with dets [G1 (TP), FAR (FP)]; image B: G3 with det G3 (TP).
        # ranked TP, FP, TP over 3 gts: recall 1/3, 1/3, 2/3; precision 1, 1/2, 2/3.
        # VOC07: thresholds 0..0.3 -> 1 (4 of them), 0.4..0.6 -> 2/3 (3), 0.7..1 -> 0: 6/11.
        # area: 1/3 * 1 + 1/3 * 2/3 = 5/9.
        res = [image([G1, FAR], [0, 0], [G1, G2], [0, 0]), image([G3], [0], [G3], [0])]
        # (AP is summed in float32, as mmdet's average_precision that LMMRotate calls)
        m07, aps, n = map_no_confidence(res, 1, mode='11points')
        assert n == [3] and math.isclose(m07, 6 / 11, rel_tol=1e-6)
        assert math.isclose(map_no_confidence(res, 1, mode='area')[0], 5 / 9, rel_tol=1e-6)

    def test_text_order_is_the_rank(self) -> None:
        # same boxes, FP written first: FP, TP, TP -> precision 0, 1/2, 2/3, recall 0, 1/3, 2/3
        # VOC07: thresholds 0..0.6 -> 2/3 (7 of them): 14/33.
        res = [image([FAR, G1], [0, 0], [G1, G2], [0, 0]), image([G3], [0], [G3], [0])]
        assert math.isclose(map_no_confidence(res, 1)[0], 14 / 33, rel_tol=1e-6)

    def test_difficult_and_classes_without_gt(self) -> None:
        # det on a difficult object: neither TP nor FP; class 1 has no gt: left out of the mean
        res = [image([G1, G2, FAR], [0, 0, 1], [G1], [0], ign=[G2], ign_labels=[0])]
        m, aps, n = map_no_confidence(res, 2)
        assert n == [1, 0] and aps[0] == 1.0 and m == 1.0
        assert map_no_confidence([image([FAR], [1])], 2)[0] == 0.0  # no gt anywhere

    def test_equals_mmrotate_with_scores_set_to_one(self, monkeypatch) -> None:
        monkeypatch.setattr(mean_ap, 'get_context', lambda method: SimpleNamespace(Pool=InlinePool))
        rng = np.random.default_rng(0)
        res, dets_mm, anns = [], [], []
        for _ in range(3):
            gts = np.c_[rng.uniform(20, 200, (4, 2)), rng.uniform(10, 30, (4, 2)),
                        rng.uniform(-1, 1, 4)]
            gt_labels = rng.integers(0, 2, 4)
            dets = np.concatenate([gts + rng.normal(0, [2, 2, 2, 2, 0.1], gts.shape),
                                   np.c_[rng.uniform(20, 200, (2, 2)), [[15, 15], [20, 10]],
                                         [0.1, 0.2]]])
            det_labels = np.concatenate([gt_labels, [0, 1]])
            ign = gts[:1] + [1, 0, 0, 0, 0]
            res.append(image(dets, det_labels, gts[1:], gt_labels[1:], ign, gt_labels[:1]))
            dets_mm.append([np.c_[dets[det_labels == c], np.ones((det_labels == c).sum())]
                            .astype(np.float32) for c in range(2)])
            anns.append(dict(bboxes=gts[1:].astype(np.float32), labels=gt_labels[1:],
                             bboxes_ignore=ign.astype(np.float32), labels_ignore=gt_labels[:1]))
        for mode, use_07 in (('11points', True), ('area', False)):
            ref, _ = eval_rbbox_map(dets_mm, anns, iou_thr=0.5, use_07_metric=use_07, nproc=1,
                                    logger='silent')
            ours, _, _ = map_no_confidence(res, 2, mode=mode)
            assert math.isclose(ours, ref, rel_tol=1e-6, abs_tol=1e-9), mode


class TestF1:

    RES = [image([G1, D_SHIFT, FAR], [0, 0, 1], [G1, G2], [0, 0])]

    def test_greedy_hand_computed(self) -> None:
        # class 0: G1 matched once (TP), the shifted duplicate is an FP, G2 missed (FN):
        # P = R = F1 = 1/2. class 1: one FP, no gt: P = R = F1 = 0. Means over both: 1/4.
        out = f1_greedy(self.RES, 2)
        assert out['tp'] == [1, 0] and out['fp'] == [1, 1] and out['fn'] == [1, 0]
        assert math.isclose(out['mF1'], 0.25) and math.isclose(out['precision'], 0.25)

    def test_lmmrotate_confusion_matrix_hand_computed(self) -> None:
        # both class-0 dets overlap G1: (0, 0) += 2; FAR overlaps nothing: (bg, 1) += 1;
        # G2 never hit: (0, bg) += 1. TP = [2, 0, 0]; columns [2, 1, 1]; rows [3, 0, 1].
        # P = [1, 0, 0], R = [2/3, 0, 0]: mP = 1/3, mR = 2/9, F1 = 2 mP mR / (mP + mR) = 4/15.
        matrix = lmmrotate_confusion_matrix(self.RES, 2)
        assert matrix.tolist() == [[2, 0, 1], [0, 0, 0], [0, 1, 0]]
        mean_p, mean_r, f1 = f1_lmmrotate(self.RES, 2)
        assert math.isclose(mean_p, 1 / 3) and math.isclose(mean_r, 2 / 9)
        assert math.isclose(f1, 4 / 15)

    def test_greedy_matches_by_iou_not_text_order(self) -> None:
        # G1 spans x 0..10, G1b x 4..14, d_a x 2..12 (all 10 high): IoU(d_a, G1) =
        # IoU(d_a, G1b) = 80/120; IoU(G1, G1b) = 60/140 < 0.5. In decreasing IoU: (d_b = G1,
        # G1) = 1, then d_a takes G1b: 2 TP whatever the text order. Matching in text order
        # with d_a first would give d_a G1 and leave d_b = G1 without a partner.
        g1b = box(9, 5)
        d_a = box(7, 5)
        for order in ([d_a, G1], [G1, d_a]):
            out = f1_greedy([image(order, [0, 0], [G1, g1b], [0, 0])], 1)
            assert out['tp'] == [2] and out['fp'] == [0]

    def test_difficult_not_counted_as_fp_in_greedy(self) -> None:
        res = [image([G1, G2], [0, 0], [G1], [0], ign=[G2], ign_labels=[0])]
        assert f1_greedy(res, 1)['fp'] == [0]
        # LMMRotate's matrix has no difficult objects: the det on G2 is a background FP
        assert lmmrotate_confusion_matrix(res, 1).tolist() == [[1, 0], [1, 0]]


def gt_instances(boxes, labels) -> InstanceData:
    inst = InstanceData()
    inst.bboxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 5)
    inst.labels = torch.tensor(labels, dtype=torch.int64)
    return inst


class TestMetric:

    def test_text_predictions_through_the_registry(self) -> None:
        metric = METRICS.build(dict(type='RotatedBoxTextMetric',
                                    codec=dict(preset='lmmrotate')))
        metric.dataset_meta = dict(classes=CLASSES)
        codec = RotatedBoxTextCodec.from_preset('lmmrotate', CLASSES, image_size=(400, 200))
        gts = [[100.0, 50.0, 40.0, 20.0, 0.3], [300.0, 150.0, 30.0, 12.0, -0.5]]
        text = codec.encode(torch.tensor(gts), torch.tensor([0, 1])) + 'ship<loc_1>'
        samples = [dict(pred_text=text, ori_shape=(200, 400), img_path='a.png',
                        gt_instances=gt_instances(gts, [0, 1]),
                        ignored_instances=gt_instances([], []))]
        metric.process({}, samples)
        out = metric.evaluate(1)
        assert out['rbox_text/mAP_nc'] == 1.0 and out['rbox_text/mF1'] == 1.0
        assert out['rbox_text/text_malformed'] == 1.0  # the dangling '<loc_1>'
        # LMMRotate's mean includes the background entry (P = R = 0): 2/3
        assert math.isclose(out['rbox_text/mF1_lmmrotate'], 2 / 3, rel_tol=1e-6)

    def test_scored_predictions_with_thresholds(self) -> None:
        # FAR (score 0.2) written before G1 (score 0.9). thr 0.1 keeps both, scored 1, in text
        # order FP, TP over 1 gt: precision 1/2 at recall 1 -> VOC07 1/2; thr 0.5 keeps G1: 1.
        metric = RotatedBoxTextMetric(score_thrs=[0.1, 0.5], prefix='t')
        metric.dataset_meta = dict(classes=CLASSES)
        pred = InstanceData()
        pred.bboxes = torch.tensor([FAR, G1])
        pred.labels = torch.tensor([0, 0])
        pred.scores = torch.tensor([0.2, 0.9])
        metric.process({}, [dict(pred_instances=pred, gt_instances=gt_instances([G1], [0]))])
        out = metric.evaluate(1)
        assert math.isclose(out['t/mAP_nc@0.1'], 0.5) and out['t/mAP_nc@0.5'] == 1.0
        assert out['t/mAP_nc'] == 1.0

    def test_quadrilateral_ground_truth_and_errors(self) -> None:
        metric = RotatedBoxTextMetric()
        metric.dataset_meta = dict(classes=CLASSES)
        quad = gt_instances([], [])
        quad.bboxes = torch.tensor([[0.0, 0, 10, 0, 10, 10, 0, 10]])
        quad.labels = torch.tensor([1])
        pred = gt_instances([G1], [1])
        metric.process({}, [dict(pred_instances=pred, gt_instances=quad)])
        assert metric.evaluate(1)['rbox_text/mAP_nc'] == 1.0
        with pytest.raises(ValueError, match='no codec'):
            metric.process({}, [dict(pred_text='plane', gt_instances=quad)])
        with pytest.raises(ValueError, match=r'\(N, 5\)'):
            bad = gt_instances([], [])
            bad.bboxes = torch.zeros((1, 4))
            bad.labels = torch.tensor([0])
            metric.process({}, [dict(pred_instances=bad, gt_instances=quad)])


DOTA_SAMPLES = Path(__file__).resolve().parents[2].parent / 'shared/data/dota_samples/example'
DOTA = ('plane', 'baseball-diamond', 'bridge', 'ground-track-field', 'small-vehicle',
        'large-vehicle', 'ship', 'tennis-court', 'basketball-court', 'storage-tank',
        'soccer-ball-field', 'roundabout', 'harbor', 'swimming-pool', 'helicopter')


@pytest.mark.skipif(not (DOTA_SAMPLES / 'images/P1888.png').exists(),
                    reason='real DOTA sample not available')
def test_real_dota_labels_through_text() -> None:
    """P1888's labels written as LMMRotate text and read back score 1; GeoChat's grid does not."""
    height, width = cv2.imread(str(DOTA_SAMPLES / 'images/P1888.png')).shape[:2]
    rows = [line.split() for line in (DOTA_SAMPLES / 'labelTxt/P1888.txt').read_text().splitlines()]
    rows = [r for r in rows if len(r) >= 9]
    polys = torch.tensor([[float(v) for v in r[:8]] for r in rows])
    labels = torch.tensor([DOTA.index(r[8]) for r in rows])
    difficult = torch.tensor([len(r) > 9 and r[9] == '1' for r in rows])
    gt, ign = InstanceData(), InstanceData()
    gt.bboxes, gt.labels = polys[~difficult], labels[~difficult]
    ign.bboxes, ign.labels = polys[difficult], labels[difficult]
    scores = {}
    for preset in ('lmmrotate', 'geochat'):
        codec = RotatedBoxTextCodec.from_preset(preset, DOTA, image_size=(width, height))
        metric = RotatedBoxTextMetric(codec=dict(preset=preset), lmmrotate_classes='dataset')
        metric.dataset_meta = dict(classes=DOTA)
        metric.process({}, [dict(pred_text=codec.encode(polys, labels),
                                 ori_shape=(height, width), gt_instances=gt,
                                 ignored_instances=ign)])
        scores[preset] = metric.evaluate(1)
    lmm, geo = scores['lmmrotate'], scores['geochat']
    assert lmm['rbox_text/mAP_nc'] == 1.0 and lmm['rbox_text/mF1'] == 1.0
    assert lmm['rbox_text/text_malformed'] == 0.0
    # 7 px steps on a 712 px image: small objects fall below IoU 0.5
    assert geo['rbox_text/mAP_nc'] < 0.95 and geo['rbox_text/mF1'] < 0.99
    # LMMRotate's F1 averages over all 15 classes + background: far below 1 for perfect boxes
    present = len(set(labels[~difficult].tolist()))
    assert math.isclose(lmm['rbox_text/mF1_lmmrotate'], present / 16, rel_tol=1e-6)


def test_lmmrotate_class_count_from_ground_truth() -> None:
    # one class-0 gt found exactly: 'gt' counts classes 0..0 + background -> P = R = 1/2;
    # 'dataset' counts both classes + background -> 1/3
    out = {}
    for mode in ('gt', 'dataset'):
        metric = RotatedBoxTextMetric(lmmrotate_classes=mode)
        metric.dataset_meta = dict(classes=CLASSES)
        metric.process({}, [dict(pred_instances=gt_instances([G1], [0]),
                                 gt_instances=gt_instances([G1], [0]))])
        out[mode] = metric.evaluate(1)['rbox_text/mF1_lmmrotate']
    assert math.isclose(out['gt'], 1 / 2) and math.isclose(out['dataset'], 1 / 3)
