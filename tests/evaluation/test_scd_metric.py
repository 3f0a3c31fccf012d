"""Tests of SCDMetric against independent answers.

Two kinds of oracle, neither of which uses :mod:`mmrs.evaluation.functional`:

- known-answer fixtures: tiny maps whose confusion matrices and scores are derived by hand
  in the comments (fractions, then the definitions: SeK = kappa without the (0, 0) entry x
  exp(IoU_c - 1), Fscd = F1 of correct changed pixels);
- torchmetrics on random SECOND-like maps: accuracy, Jaccard index and Cohen's kappa of the
  pixels themselves (kappa "without (0, 0)" = kappa of the pixels that are not unchanged in
  both prediction and ground truth), combined by the papers' definitions.
"""
import math

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from torchmetrics.functional.classification import (multiclass_accuracy,
                                                    multiclass_cohen_kappa,
                                                    multiclass_jaccard_index)

from mmrs.evaluation import SCDMetric
from mmrs.evaluation.functional import from_to_labels, nanmean_iou, opencd_sek, scd_metrics
from mmrs.registry import METRICS
from mmrs.structures import ChangeDataSample

IGNORE = 255
K = 6  # SECOND land-cover classes
TOL = 1e-6


# ----------------------------------------------------------------------------- torchmetrics
def tm_scores(pred: torch.Tensor, gt: torch.Tensor, n: int) -> dict[str, float]:
    """SECOND-convention scores of flat class maps (ignored pixels already removed)."""
    oa = multiclass_accuracy(pred, gt, num_classes=n, average='micro').item()
    iou_nc, iou_c = multiclass_jaccard_index((pred != 0).long(), (gt != 0).long(),
                                             num_classes=2, average='none').tolist()
    keep = (pred != 0) | (gt != 0)
    kappa_n0 = multiclass_cohen_kappa(pred[keep], gt[keep], num_classes=n).item()
    sek = kappa_n0 * math.exp(iou_c - 1)
    correct = ((pred == gt) & (gt != 0)).sum().item()
    psc, rsc = correct / (pred != 0).sum().item(), correct / (gt != 0).sum().item()
    miou = (iou_nc + iou_c) / 2
    return {'OA': oa, 'IoU_nc': iou_nc, 'IoU_c': iou_c, 'mIoU': miou, 'kappa_n0': kappa_n0,
            'SeK': sek, 'Psc': psc, 'Rsc': rsc, 'Fscd': 2 * psc * rsc / (psc + rsc),
            'Score': 0.3 * miou + 0.7 * sek}


def tm_present_miou(pred: torch.Tensor, gt: torch.Tensor, n: int) -> float:
    """mmseg's mIoU: mean Jaccard over the classes present in prediction or ground truth."""
    ious = multiclass_jaccard_index(pred, gt, num_classes=n, average='none')
    present = torch.zeros(n, dtype=torch.bool)
    present[torch.unique(torch.cat([pred, gt]))] = True
    return ious[present].mean().item()


def flat(all_maps: list[dict], key: str) -> torch.Tensor:
    return torch.cat([torch.as_tensor(m[key]).reshape(-1) for m in all_maps]).long()


def semantic_pixels(all_maps: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """Both dates' semantic pixels, predictions masked by the predicted change (the SECOND /
    SCanNet evaluation), each date's own ignored pixels dropped."""
    change = flat(all_maps, 'pred_sem_seg') != 0
    preds, gts = [], []
    for date in ('from', 'to'):
        pred = flat(all_maps, f'pred_sem_seg_{date}') * change
        gt = flat(all_maps, f'gt_sem_seg_{date}')
        keep = gt != IGNORE
        preds.append(pred[keep])
        gts.append(gt[keep])
    return torch.cat(preds), torch.cat(gts)


def from_to_pixels(all_maps: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """MambaCD's from-to classes: changed A -> B is (A - 1) * K + B, unchanged 0."""
    def codes(prefix: str) -> torch.Tensor:
        change = flat(all_maps, f'{prefix}_sem_seg')
        src, dst = flat(all_maps, f'{prefix}_sem_seg_from'), flat(all_maps, f'{prefix}_sem_seg_to')
        return torch.where(change == 1, (src - 1) * K + dst, torch.zeros_like(src))

    keep = ((flat(all_maps, 'gt_sem_seg') != IGNORE) & (flat(all_maps, 'gt_sem_seg_from') != IGNORE)
            & (flat(all_maps, 'gt_sem_seg_to') != IGNORE))
    return codes('pred')[keep], codes('gt')[keep]


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

    def test_second_matches_torchmetrics(self, scd_data) -> None:
        result = evaluate(SCDMetric(num_semantic_classes=K + 1), scd_data)
        expected = tm_scores(*semantic_pixels(all_maps(scd_data)), K + 1)
        assert_close(result, expected, 'second/')
        assert_close(result, {k: expected[k] for k in ('mIoU', 'SeK', 'Fscd', 'Score')}, '')
        assert 0.05 < result['SeK'] < 0.9  # non-degenerate data

    def test_opencd_matches_torchmetrics(self, scd_data) -> None:
        result = evaluate(SCDMetric(num_semantic_classes=K + 1), scd_data)
        maps = all_maps(scd_data)
        keep = flat(maps, 'gt_sem_seg') != IGNORE
        binary_miou = tm_present_miou(flat(maps, 'pred_sem_seg')[keep],
                                      flat(maps, 'gt_sem_seg')[keep], 2)
        pred, gt = semantic_pixels(maps)
        sek = tm_scores(pred, gt, K + 1)['SeK']  # open-cd's area formula is the same SeK
        assert_close(result, {'binary_mIoU': binary_miou,
                              'semantic_mIoU': tm_present_miou(pred, gt, K + 1), 'SeK': sek,
                              'SCD_Score': 0.3 * binary_miou + 0.7 * sek}, 'opencd/')

    def test_mambacd_matches_torchmetrics(self, scd_data) -> None:
        result = evaluate(SCDMetric(num_semantic_classes=K + 1), scd_data)
        pred, gt = from_to_pixels(all_maps(scd_data))
        assert len(torch.unique(gt)) > 10  # many from-to classes occur
        assert_close(result, tm_scores(pred, gt, K * K + 1), 'mambacd/')

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

    def test_known_answers_two_samples_with_ignore(self) -> None:
        # K = 2 (classes 0 = no change, 1, 2); sample A is 1x4, sample B 1x2.
        #   A gt change [1, 1, 0, 255]  from [1, 2, 0, 255]  to [2, 255, 0, 255]
        #   A pr change [1, 0, 1, 1]    from [1, 2, 2, 1]    to [2, 1, 1, 2]
        #   B gt change [0, 1]          from [0, 2]          to [0, 1]
        #   B pr change [0, 1]          from [2, 2]          to [0, 2]
        # Binary (A px3 ignored): TP 2 (A0, B1), FN 1 (A1), FP 1 (A2), TN 1 (B0)
        #   -> f1 = 4/6, IoU_c = 2/4, IoU_nc = 1/3, open-cd binary_mIoU = 5/12.
        # SECOND: semantic predictions masked by the predicted change, pairs (gt, pred):
        #   date 1: A (1,1) (2,0) (0,2), B (0,0) (2,2); date 2: A (2,2) (0,1), B (0,0) (1,2)
        #   matrix rows gt [[2,1,1],[0,1,1],[1,0,2]], n = 9, OA = 5/9
        #   collapsed TN 2, FP 2, FN 1, TP 4 -> IoU_nc = 2/5, IoU_c = 4/7, mIoU = 17/35
        #   without (0,0): n = 7, po = 3/7, rows [2,2,3], cols [1,2,4], pe = 18/49
        #   -> kappa_n0 = (3/49)/(31/49) = 3/31, SeK = 3/31 * exp(-3/7)
        #   Fscd: correct changed 3, predicted changed 6, gt changed 5 -> 2(1/2)(3/5)/(11/10)
        #   = 6/11; open-cd semantic_mIoU = (2/5 + 1/3 + 2/5)/3 = 17/45
        # From-to (codes (A-1)*2+B; A px1, px3 ignored): pairs (2,2) (0,3) (0,0) (3,4)
        #   OA 1/2, TN 1 FP 1 FN 0 TP 2 -> mIoU = (1/2 + 2/3)/2 = 7/12
        #   without (0,0): po 1/3, pe 2/9 -> kappa 1/7, SeK = exp(-1/3)/7
        #   Fscd: correct 1, predicted changed 3, gt changed 2 -> 2(1/3)(1/2)/(5/6) = 2/5
        a = dict(gt_sem_seg=[[1, 1, 0, 255]], gt_sem_seg_from=[[1, 2, 0, 255]],
                 gt_sem_seg_to=[[2, 255, 0, 255]], pred_sem_seg=[[1, 0, 1, 1]],
                 pred_sem_seg_from=[[1, 2, 2, 1]], pred_sem_seg_to=[[2, 1, 1, 2]])
        b = dict(gt_sem_seg=[[0, 1]], gt_sem_seg_from=[[0, 2]], gt_sem_seg_to=[[0, 1]],
                 pred_sem_seg=[[0, 1]], pred_sem_seg_from=[[2, 2]], pred_sem_seg_to=[[0, 2]])
        batches = [[{k: np.array(v) for k, v in a.items()}],
                   [{k: np.array(v) for k, v in b.items()}]]
        result = evaluate(SCDMetric(num_semantic_classes=3), batches)
        sek = 3 / 31 * math.exp(-3 / 7)
        assert_close(result, {'f1': 2 / 3, 'iou': 0.5, 'iou_unchanged': 1 / 3}, 'binary/')
        assert_close(result, {'OA': 5 / 9, 'IoU_nc': 2 / 5, 'IoU_c': 4 / 7, 'mIoU': 17 / 35,
                              'kappa_n0': 3 / 31, 'SeK': sek, 'Psc': 0.5, 'Rsc': 0.6,
                              'Fscd': 6 / 11, 'Score': 0.3 * 17 / 35 + 0.7 * sek}, 'second/')
        assert_close(result, {'binary_mIoU': 5 / 12, 'semantic_mIoU': 17 / 45, 'SeK': sek},
                     'opencd/')
        assert_close(result, {'OA': 0.5, 'mIoU': 7 / 12, 'kappa_n0': 1 / 7,
                              'SeK': math.exp(-1 / 3) / 7, 'Fscd': 0.4}, 'mambacd/')
        # the same fixture through torchmetrics, as a check of the oracle itself
        maps = [m for batch in batches for m in batch]
        assert tm_scores(*semantic_pixels(maps), 3)['SeK'] == pytest.approx(sek)

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
        with pytest.raises(ValueError, match='gt_sem_seg_to of sample_idx=0 is 23x24'):
            SCDMetric(num_semantic_classes=K + 1).process({}, [make_scd_sample(maps).to_dict()])
        maps = dict(scd_data[0][0])
        maps['pred_sem_seg_to'] = maps['pred_sem_seg_to'][:-1]
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
