"""Tests of SCDMetric against plain numpy re-derivations of each convention.

The references below are written from the papers' / repositories' definitions and do not
call mmrs.evaluation.functional: the confusion matrix is built with ``np.add.at`` in the
papers' orientation (rows = prediction, columns = ground truth), the open-cd variant from
mmseg-style per-class areas, and the from-to variant with its own encoding loop.
"""
import math

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData

from mmrs.evaluation import SCDMetric
from mmrs.evaluation.functional import (from_to_labels, nanmean_iou, opencd_sek,
                                        scd_metrics)
from mmrs.registry import METRICS
from mmrs.structures import ChangeDataSample

IGNORE = 255
K = 6  # SECOND land-cover classes
TOL = 1e-6


# ----------------------------------------------------------------------------- references
def ref_hist(pred: np.ndarray, gt: np.ndarray, n: int) -> np.ndarray:
    """Paper orientation: q[i, j] = pixels predicted i with ground truth j (gt 255 dropped)."""
    q = np.zeros((n, n), dtype=np.int64)
    keep = gt != IGNORE
    np.add.at(q, (pred[keep].astype(int), gt[keep].astype(int)), 1)
    return q


def ref_second(q: np.ndarray) -> dict[str, float]:
    """Yang et al. (SECOND) mIoU / SeK / Score and Ding et al. Fscd from q (rows = pred)."""
    q = q.astype(np.float64)
    total, q00 = q.sum(), q[0, 0]
    iou_nc = q00 / (q[0, :].sum() + q[:, 0].sum() - q00)
    iou_c = q[1:, 1:].sum() / (total - q00)
    q_hat = q.copy()
    q_hat[0, 0] = 0
    s = q_hat.sum()
    p_o = np.trace(q_hat) / s
    p_e = np.sum(q_hat.sum(axis=0) * q_hat.sum(axis=1)) / s**2
    kappa_hat = (p_o - p_e) / (1 - p_e)
    sek = kappa_hat * math.exp(iou_c - 1)
    miou = (iou_nc + iou_c) / 2
    correct_changed = np.trace(q[1:, 1:])
    psc = correct_changed / q[1:, :].sum()  # rows = prediction
    rsc = correct_changed / q[:, 1:].sum()  # columns = ground truth
    return {
        'mIoU': miou, 'SeK': sek, 'Score': 0.3 * miou + 0.7 * sek,
        'Fscd': 2 * psc * rsc / (psc + rsc), 'IoU_nc': iou_nc, 'IoU_c': iou_c,
        'OA': np.trace(q) / total, 'kappa_n0': kappa_hat, 'Psc': psc, 'Rsc': rsc,
    }


def ref_areas(pred: np.ndarray, gt: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """mmseg intersect_and_union: per-class intersect, union, pred and label areas."""
    keep = gt != IGNORE
    p, g = pred[keep], gt[keep]
    hist = lambda x: np.histogram(x, bins=n, range=(0, n))[0].astype(np.float64)  # noqa: E731
    intersect, area_p, area_g = hist(p[p == g]), hist(p), hist(g)
    return intersect, area_p + area_g - intersect, area_p, area_g


def ref_opencd(binary_areas: list, semantic_areas: list) -> dict[str, float]:
    """open-cd SCDMetric(cal_sek=True): binary/semantic nanmean mIoU, SeK, SCD_Score."""
    b_int, b_uni = sum(a[0] for a in binary_areas), sum(a[1] for a in binary_areas)
    s_int, s_uni, s_pred, s_lab = (sum(a[i] for a in semantic_areas) for i in range(4))
    binary_miou = np.nanmean(b_int / b_uni)
    semantic_miou = np.nanmean(s_int / s_uni)
    tp0 = s_int[0]
    s_int, s_pred, s_lab = s_int.copy(), s_pred.copy(), s_lab.copy()
    s_int[0] -= tp0
    s_pred[0] -= tp0
    s_lab[0] -= tp0
    po = s_int.sum() / s_lab.sum()
    pe = (s_lab * s_pred).sum() / s_pred.sum()**2
    kappa0 = (po - pe) / (1 - pe)
    iou_fg = (s_lab[1:].sum() - s_pred[0]) / s_lab.sum()
    sek = kappa0 * math.exp(iou_fg) / math.e
    return {'binary_mIoU': binary_miou, 'semantic_mIoU': semantic_miou, 'SeK': sek,
            'SCD_Score': 0.3 * binary_miou + 0.7 * sek}


def ref_from_to(change: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """MambaCD encoding, pixel by pixel: (A - 1) * K + B where changed, else 0."""
    out = np.zeros(change.shape, dtype=np.int64)
    for idx in np.ndindex(change.shape):
        if change[idx] == 1:
            out[idx] = (int(src[idx]) - 1) * K + int(dst[idx])
    return out


# ----------------------------------------------------------------------------- fixtures
def make_scd_sample(maps: dict[str, np.ndarray], idx: int = 0) -> ChangeDataSample:
    sample = ChangeDataSample(metainfo={'sample_idx': idx})
    for key, value in maps.items():
        setattr(sample, key, PixelData(data=torch.as_tensor(value)[None]))
    return sample


def random_scd_maps(rng: np.random.Generator, h: int = 24, w: int = 24) -> dict:
    """One SECOND-like sample: consistent GT, noisy raw-argmax-style predictions."""
    gt_change = (rng.random((h, w)) < 0.4).astype(np.int64)
    gt_from = rng.integers(1, K + 1, (h, w)) * gt_change
    gt_to = rng.integers(1, K + 1, (h, w)) * gt_change
    ignored = rng.random((h, w)) < 0.1
    gt_change[ignored] = gt_from[ignored] = gt_to[ignored] = IGNORE
    gt_to[(rng.random((h, w)) < 0.03) & ~ignored] = IGNORE  # date-specific ignore
    pred_change = np.where(rng.random((h, w)) < 0.2, 1 - (gt_change == 1), gt_change == 1)
    pred_change = pred_change.astype(np.int64)

    def noisy(gt_sem: np.ndarray) -> np.ndarray:  # classes 1..K everywhere (argmax style)
        keep = (gt_sem >= 1) & (gt_sem <= K) & (rng.random((h, w)) < 0.7)
        return np.where(keep, gt_sem, rng.integers(1, K + 1, (h, w)))

    return dict(pred_sem_seg=pred_change, pred_sem_seg_from=noisy(gt_from),
                pred_sem_seg_to=noisy(gt_to), gt_sem_seg=gt_change, gt_sem_seg_from=gt_from,
                gt_sem_seg_to=gt_to)


@pytest.fixture
def scd_data() -> list[list[dict]]:
    """3 batches of 2 random samples (as map dicts)."""
    rng = np.random.default_rng(42)
    return [[random_scd_maps(rng) for _ in range(2)] for _ in range(3)]


def evaluate(metric: SCDMetric, batches: list[list[dict]]) -> dict[str, float]:
    idx = 0
    for batch in batches:
        samples = []
        for maps in batch:
            samples.append(make_scd_sample(maps, idx).to_dict())
            idx += 1
        metric.process({}, samples)
    return metric.evaluate(idx)


def all_maps(batches: list[list[dict]]) -> list[dict]:
    return [maps for batch in batches for maps in batch]


def assert_close(result: dict, expected: dict, prefix: str) -> None:
    for key, value in expected.items():
        assert result[f'{prefix}{key}'] == pytest.approx(float(value), abs=TOL), key


# ----------------------------------------------------------------------------- tests
class TestSCDMetricConventions:

    def test_second_matches_paper_formulas(self, scd_data) -> None:
        result = evaluate(SCDMetric(num_semantic_classes=K + 1), scd_data)
        q = np.zeros((K + 1, K + 1), dtype=np.int64)
        for m in all_maps(scd_data):
            changed = m['pred_sem_seg'] == 1  # SCanNet/MambaCD mask the semantic argmax
            q += ref_hist(m['pred_sem_seg_from'] * changed, m['gt_sem_seg_from'], K + 1)
            q += ref_hist(m['pred_sem_seg_to'] * changed, m['gt_sem_seg_to'], K + 1)
        expected = ref_second(q)
        assert_close(result, expected, 'second/')
        assert_close(result, {k: expected[k] for k in ('mIoU', 'SeK', 'Fscd', 'Score')}, '')
        assert 0.05 < result['SeK'] < 0.9  # non-degenerate data

    def test_opencd_matches_area_formulas(self, scd_data) -> None:
        result = evaluate(SCDMetric(num_semantic_classes=K + 1), scd_data)
        binary_areas, semantic_areas = [], []
        for m in all_maps(scd_data):
            changed = m['pred_sem_seg'] == 1
            binary_areas.append(ref_areas(m['pred_sem_seg'], m['gt_sem_seg'], 2))
            semantic_areas.append(
                ref_areas(m['pred_sem_seg_from'] * changed, m['gt_sem_seg_from'], K + 1))
            semantic_areas.append(
                ref_areas(m['pred_sem_seg_to'] * changed, m['gt_sem_seg_to'], K + 1))
        assert_close(result, ref_opencd(binary_areas, semantic_areas), 'opencd/')
        # open-cd's area-based SeK is algebraically the SECOND SeK
        assert result['opencd/SeK'] == pytest.approx(result['second/SeK'], abs=1e-9)

    def test_mambacd_matches_from_to_reencoding(self, scd_data) -> None:
        result = evaluate(SCDMetric(num_semantic_classes=K + 1), scd_data)
        n = K * K + 1
        q = np.zeros((n, n), dtype=np.int64)
        for m in all_maps(scd_data):
            ignored = ((m['gt_sem_seg'] == IGNORE) | (m['gt_sem_seg_from'] == IGNORE) |
                       (m['gt_sem_seg_to'] == IGNORE))
            gt = ref_from_to(m['gt_sem_seg'], m['gt_sem_seg_from'], m['gt_sem_seg_to'])
            gt[ignored] = IGNORE
            pred = ref_from_to(m['pred_sem_seg'], m['pred_sem_seg_from'],
                               m['pred_sem_seg_to'])
            q += ref_hist(pred, gt, n)
        assert q.sum() > 0 and np.count_nonzero(np.diag(q)[1:]) > 5
        assert_close(result, ref_second(q), 'mambacd/')

    def test_binary_block(self, scd_data) -> None:
        result = evaluate(SCDMetric(num_semantic_classes=K + 1), scd_data)
        tp = fp = fn = tn = 0
        for m in all_maps(scd_data):
            keep = m['gt_sem_seg'] != IGNORE
            p, g = m['pred_sem_seg'][keep], m['gt_sem_seg'][keep]
            tp += np.sum((p == 1) & (g == 1))
            fp += np.sum((p == 1) & (g == 0))
            fn += np.sum((p == 0) & (g == 1))
            tn += np.sum((p == 0) & (g == 0))
        assert result['binary/f1'] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=TOL)
        assert result['binary/iou'] == pytest.approx(tp / (tp + fp + fn), abs=TOL)
        assert result['binary/oa'] == pytest.approx((tp + tn) / (tp + tn + fp + fn), abs=TOL)

    def test_hand_computed_example(self) -> None:
        # K = 2 (classes 0 = no change, 1, 2); one 2x2 sample.
        #   gt_change [[0,1],[1,1]]  gt_from [[0,1],[2,1]]  gt_to [[0,2],[1,2]]
        #   pr_change [[0,1],[1,0]]  pr_from [[0,1],[1,0]]  pr_to [[0,2],[1,0]]
        # SECOND matrix (rows gt, cols pred) over both dates, 8 pixels:
        #   date 1 (gt,pred): (0,0) (1,1) (2,1) (1,0); date 2: (0,0) (2,2) (1,1) (2,0)
        #   [[2,0,0],[1,2,0],[1,1,1]]; TP0 = 2
        #   collapsed: TN 2, FP 0, FN 2, TP 4 -> IoU_nc = 2/4, IoU_c = 4/6, mIoU = 7/12
        #   without (0,0): [[0,0,0],[1,2,0],[1,1,1]], n = 6, po = 3/6,
        #   rows [0,3,3] cols [2,3,1] -> pe = (0 + 9 + 3)/36 = 1/3, kappa = (1/6)/(2/3) = 1/4
        #   SeK = exp(-1/3)/4; Score = 0.3*7/12 + 0.7*SeK
        #   Fscd: correct changed 3, predicted changed 8-4 = 4, gt changed 8-2 = 6
        #   -> Psc 3/4, Rsc 1/2, Fscd = 0.75/1.25 = 0.6; OA = 5/8
        # From-to (K = 2, codes 1..4): gt [[0,2],[3,2]], pred [[0,2],[1,0]]
        #   pairs (0,0) (2,2) (3,1) (2,0): TN 1, FN 1, TP 2 -> mIoU = (1/2 + 2/3)/2 = 7/12
        #   without (0,0): {(2,2),(3,1),(2,0)}, po = 1/3, rows r2=2 r3=1, cols c0=c1=c2=1
        #   -> pe = r2*c2/9 = 2/9, kappa = (1/9)/(7/9) = 1/7, SeK = exp(-1/3)/7
        #   Fscd: correct 1, predicted changed 2, gt changed 3 -> 2*(1/2*1/3)/(5/6) = 0.4
        # open-cd: per-class IoU of the SECOND matrix 2/4, 2/4, 1/3 -> semantic_mIoU = 4/9;
        #   binary (TN 1, FP 0, FN 1, TP 2): IoU 1/2 and 2/3 -> binary_mIoU = 7/12
        maps = dict(
            gt_sem_seg=np.array([[0, 1], [1, 1]]), gt_sem_seg_from=np.array([[0, 1], [2, 1]]),
            gt_sem_seg_to=np.array([[0, 2], [1, 2]]), pred_sem_seg=np.array([[0, 1], [1, 0]]),
            pred_sem_seg_from=np.array([[0, 1], [1, 0]]),
            pred_sem_seg_to=np.array([[0, 2], [1, 0]]))
        result = evaluate(SCDMetric(num_semantic_classes=3), [[maps]])
        sek = math.exp(-1 / 3) / 4
        assert_close(result, {'mIoU': 7 / 12, 'SeK': sek, 'Fscd': 0.6, 'OA': 5 / 8,
                              'kappa_n0': 0.25, 'Score': 0.3 * 7 / 12 + 0.7 * sek},
                     'second/')
        assert result['SeK'] == pytest.approx(0.179133, abs=1e-6)
        assert_close(result, {'mIoU': 7 / 12, 'SeK': math.exp(-1 / 3) / 7, 'Fscd': 0.4,
                              'kappa_n0': 1 / 7}, 'mambacd/')
        assert_close(result, {'binary_mIoU': 7 / 12, 'semantic_mIoU': 4 / 9, 'SeK': sek,
                              'SCD_Score': 0.3 * 7 / 12 + 0.7 * sek}, 'opencd/')
        assert_close(result, {'precision': 1.0, 'recall': 2 / 3, 'f1': 0.8, 'kappa': 0.5},
                     'binary/')


class TestSCDMetricOptions:

    def test_selected_conventions_only(self, scd_data) -> None:
        metric = SCDMetric(num_semantic_classes=K + 1, conventions=('second', ))
        result = evaluate(metric, scd_data)
        assert not any(k.startswith(('opencd/', 'mambacd/')) for k in result)
        assert {'SeK', 'mIoU', 'Fscd', 'Score', 'second/SeK', 'binary/f1'} <= set(result)

    def test_no_from_to_matrix_unless_needed(self, scd_data) -> None:
        metric = SCDMetric(num_semantic_classes=K + 1, conventions='opencd')
        metric.process({}, [make_scd_sample(scd_data[0][0]).to_dict()])
        assert set(metric.results[0]) == {'binary', 'semantic'}
        assert metric.results[0]['semantic'].shape == (K + 1, K + 1)

    def test_percent(self, scd_data) -> None:
        plain = evaluate(SCDMetric(num_semantic_classes=K + 1), scd_data)
        percent = evaluate(SCDMetric(num_semantic_classes=K + 1, percent=True), scd_data)
        for key, value in plain.items():
            assert percent[key] == pytest.approx(100 * value, abs=1e-4), key

    def test_classes_from_dataset_meta(self, scd_data) -> None:
        metric = SCDMetric()
        metric.dataset_meta = dict(classes=('unchanged', 'changed'),
                                   semantic_classes=tuple(f'c{i}' for i in range(K + 1)))
        reference = evaluate(SCDMetric(num_semantic_classes=K + 1), scd_data)
        assert evaluate(metric, scd_data) == pytest.approx(reference)

    def test_missing_num_classes(self, scd_data) -> None:
        with pytest.raises(ValueError, match='num_semantic_classes'):
            SCDMetric().process({}, [make_scd_sample(scd_data[0][0]).to_dict()])

    def test_unknown_convention(self) -> None:
        with pytest.raises(ValueError, match='unknown SCD conventions'):
            SCDMetric(num_semantic_classes=7, conventions=('second', 'scannet'))

    def test_bad_semantic_prediction(self, scd_data) -> None:
        maps = dict(scd_data[0][0])
        maps['pred_sem_seg_to'] = maps['pred_sem_seg_to'].copy()
        maps['pred_sem_seg_to'][maps['pred_sem_seg'] == 1] = 9
        with pytest.raises(ValueError, match=r'pred_sem_seg_to.*\[9\]'):
            SCDMetric(num_semantic_classes=K + 1).process({}, [make_scd_sample(maps).to_dict()])

    def test_bad_binary_prediction(self, scd_data) -> None:
        maps = dict(scd_data[0][0])
        maps['pred_sem_seg'] = np.where(maps['gt_sem_seg'] == 0, 3, maps['pred_sem_seg'])
        with pytest.raises(ValueError, match=r'pred_sem_seg .*\[3\]'):
            SCDMetric(num_semantic_classes=K + 1).process({}, [make_scd_sample(maps).to_dict()])

    def test_changed_pixel_without_class_in_from_to(self, scd_data) -> None:
        maps = dict(scd_data[0][0])
        maps['pred_sem_seg_from'] = np.where(maps['pred_sem_seg'] == 1, 0,
                                             maps['pred_sem_seg_from'])
        with pytest.raises(ValueError, match='prediction.*from map'):
            SCDMetric(num_semantic_classes=K + 1).process({}, [make_scd_sample(maps).to_dict()])
        # the SECOND and open-cd conventions do not need from-to codes
        SCDMetric(num_semantic_classes=K + 1, conventions=('second', 'opencd')).process(
            {}, [make_scd_sample(maps).to_dict()])

    def test_size_mismatch(self, scd_data) -> None:
        maps = dict(scd_data[0][0])
        maps['gt_sem_seg_to'] = maps['gt_sem_seg_to'][:-1]
        with pytest.raises(ValueError, match='differ in size'):
            SCDMetric(num_semantic_classes=K + 1).process({}, [make_scd_sample(maps).to_dict()])

    def test_registry_build(self) -> None:
        metric = METRICS.build(dict(type='SCDMetric', num_semantic_classes=7))
        assert isinstance(metric, SCDMetric)


class TestSCDFunctional:

    def test_from_to_labels(self) -> None:
        change = np.array([0, 1, 1, 1, IGNORE])
        src = np.array([3, 1, 6, 2, 0])
        dst = np.array([3, 1, 1, 6, 0])
        codes = from_to_labels(change, src, dst, K, IGNORE)
        np.testing.assert_array_equal(codes, [0, 1, 31, 12, IGNORE])

    def test_from_to_rejects_collision_with_ignore(self) -> None:
        with pytest.raises(ValueError, match='collide'):
            from_to_labels(np.zeros(2), np.zeros(2), np.zeros(2), 16, IGNORE)

    def test_nanmean_iou_skips_absent_classes(self) -> None:
        # class 2 never occurs: mmseg/open-cd average over classes 0 and 1 only
        # IoU_0 = 3 / (3 + 1) = 0.75, IoU_1 = 2 / (2 + 1) = 2/3 -> (0.75 + 2/3) / 2
        cm = np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]])
        assert nanmean_iou(cm) == pytest.approx((0.75 + 2 / 3) / 2)
        assert nanmean_iou(np.zeros((3, 3))) == 0.0

    def test_degenerate_matrices_are_zero_not_nan(self) -> None:
        empty = scd_metrics(np.zeros((7, 7)))
        assert all(v == 0.0 for v in empty.values())
        only_unchanged = np.zeros((7, 7))
        only_unchanged[0, 0] = 10
        out = scd_metrics(only_unchanged)
        assert not any(math.isnan(v) for v in out.values())
        assert out['IoU_nc'] == 1.0 and out['SeK'] == 0.0 and out['Fscd'] == 0.0
        assert opencd_sek(np.zeros(7), np.zeros(7), np.zeros(7)) == 0.0
