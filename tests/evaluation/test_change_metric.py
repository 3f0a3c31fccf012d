"""Tests of ChangeMetric and the binary functions of mmrs.evaluation.functional.

Every score is checked against torchmetrics (an independent implementation) on random maps
with ignored pixels, spread over several batches.
"""
import math

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from torchmetrics.functional.classification import (binary_accuracy, binary_cohen_kappa,
                                                    binary_f1_score, binary_jaccard_index,
                                                    binary_precision, binary_recall,
                                                    multiclass_jaccard_index)

from mmrs.evaluation import ChangeMetric
from mmrs.evaluation.functional import binary_metrics, confusion_matrix
from mmrs.registry import METRICS
from mmrs.structures import ChangeDataSample

IGNORE = 255
TOL = 1e-6


def make_sample(pred: torch.Tensor, gt: torch.Tensor, idx: int = 0) -> ChangeDataSample:
    """A ChangeDataSample with (1, H, W) binary prediction and label."""
    sample = ChangeDataSample(metainfo={'sample_idx': idx, 'img_path': [f'a/{idx}.png',
                                                                         f'b/{idx}.png']})
    sample.pred_sem_seg = PixelData(data=pred[None])
    sample.gt_sem_seg = PixelData(data=gt[None])
    return sample


def run_metric(metric: ChangeMetric, batches: list[list[ChangeDataSample]]) -> dict:
    """Feed batches as the evaluator does (dicts via to_dict) and evaluate."""
    for batch in batches:
        metric.process({}, [s.to_dict() for s in batch])
    return metric.evaluate(sum(len(b) for b in batches))


def torchmetrics_reference(preds: torch.Tensor, gts: torch.Tensor) -> dict[str, float]:
    """The ChangeMetric keys computed with torchmetrics on flattened maps."""
    p, t = preds.reshape(-1), gts.reshape(-1)
    per_class_iou = multiclass_jaccard_index(p, t, num_classes=2, average='none',
                                             ignore_index=IGNORE)
    return {
        'precision': binary_precision(p, t, ignore_index=IGNORE).item(),
        'recall': binary_recall(p, t, ignore_index=IGNORE).item(),
        'f1': binary_f1_score(p, t, ignore_index=IGNORE).item(),
        'iou': binary_jaccard_index(p, t, ignore_index=IGNORE).item(),
        'iou_unchanged': per_class_iou[0].item(),
        'miou': per_class_iou.mean().item(),
        'oa': binary_accuracy(p, t, ignore_index=IGNORE).item(),
        'kappa': binary_cohen_kappa(p, t, ignore_index=IGNORE).item(),
    }


@pytest.fixture
def random_batches() -> tuple[list[list[ChangeDataSample]], torch.Tensor, torch.Tensor]:
    """3 batches of 2 random 24x32 samples, ~15 % ignored GT pixels, ~80 % correct preds."""
    gen = torch.Generator().manual_seed(0)
    gts = (torch.rand(6, 24, 32, generator=gen) < 0.3).long()
    flip = torch.rand(6, 24, 32, generator=gen) < 0.2
    preds = torch.where(flip, 1 - gts, gts)
    gts[torch.rand(6, 24, 32, generator=gen) < 0.15] = IGNORE
    samples = [make_sample(preds[i], gts[i], i) for i in range(6)]
    return [samples[0:2], samples[2:4], samples[4:6]], preds, gts


class TestChangeMetric:

    def test_matches_torchmetrics(self, random_batches) -> None:
        batches, preds, gts = random_batches
        result = run_metric(ChangeMetric(), batches)
        expected = torchmetrics_reference(preds, gts)
        assert set(result) == set(expected)
        for key, value in expected.items():
            assert result[key] == pytest.approx(value, abs=TOL), key

    def test_percent(self, random_batches) -> None:
        batches, preds, gts = random_batches
        result = run_metric(ChangeMetric(percent=True), batches)
        expected = torchmetrics_reference(preds, gts)
        for key, value in expected.items():
            assert result[key] == pytest.approx(100 * value, abs=1e-4), key

    def test_stores_only_counts(self, random_batches) -> None:
        batches, _, _ = random_batches
        metric = ChangeMetric()
        metric.process({}, [s.to_dict() for s in batches[0]])
        assert len(metric.results) == 2
        assert all(r.shape == (2, 2) for r in metric.results)

    def test_accepts_data_sample_objects_and_bool(self) -> None:
        gt = torch.tensor([[0, 1], [1, IGNORE]])
        pred = torch.tensor([[False, True], [False, True]])
        metric = ChangeMetric()
        metric.process({}, [make_sample(pred, gt)])
        result = metric.evaluate(1)
        # TP = 1 (0,1), FN = 1 (1,0), TN = 1 (0,0), (1,1) ignored
        assert result['precision'] == pytest.approx(1.0)
        assert result['recall'] == pytest.approx(0.5)

    def test_hand_computed(self) -> None:
        # gt   = 0 0 1 1 1 255      pred = 0 1 1 1 0 2 (the 2 sits on an ignored pixel)
        # TN = 1, FP = 1, TP = 2, FN = 1, N = 5
        # precision = 2/3, recall = 2/3, f1 = 4/6 = 2/3, iou = 2/4 = 0.5,
        # iou_unchanged = 1/3, miou = 5/12, oa = 3/5,
        # kappa: po = 0.6, pe = (2*2 + 3*3)/25 = 13/25 -> (0.6 - 0.52)/0.48 = 1/6
        gt = torch.tensor([[0, 0, 1, 1, 1, IGNORE]])
        pred = torch.tensor([[0, 1, 1, 1, 0, 2]])
        result = run_metric(ChangeMetric(), [[make_sample(pred, gt)]])
        expected = dict(precision=2 / 3, recall=2 / 3, f1=2 / 3, iou=0.5,
                        iou_unchanged=1 / 3, miou=5 / 12, oa=0.6, kappa=1 / 6)
        for key, value in expected.items():
            assert result[key] == pytest.approx(value, abs=TOL), key

    @pytest.mark.parametrize('bad', [2, IGNORE, -1])
    def test_bad_prediction_value(self, bad: int) -> None:
        gt = torch.zeros(4, 4, dtype=torch.long)
        pred = torch.zeros(4, 4, dtype=torch.long)
        pred[1, 2] = bad
        metric = ChangeMetric()
        with pytest.raises(ValueError, match=rf'pred_sem_seg.*\[{bad}\]'):
            metric.process({}, [make_sample(pred, gt, idx=7).to_dict()])

    def test_bad_ground_truth_value(self) -> None:
        gt = torch.tensor([[0, 3]])
        with pytest.raises(ValueError, match=r'gt_sem_seg.*\[3\]'):
            ChangeMetric().process({}, [make_sample(torch.tensor([[0, 1]]), gt).to_dict()])

    def test_non_integer_prediction(self) -> None:
        sample = make_sample(torch.tensor([[0.0, 0.7]]), torch.tensor([[0, 1]]))
        with pytest.raises(ValueError, match='non-integer'):
            ChangeMetric().process({}, [sample.to_dict()])

    def test_missing_field(self) -> None:
        sample = make_sample(torch.tensor([[0, 1]]), torch.tensor([[0, 1]])).to_dict()
        del sample['pred_sem_seg']
        with pytest.raises(KeyError, match='pred_sem_seg'):
            ChangeMetric().process({}, [sample])

    def test_zero_division_is_zero(self) -> None:
        # No change anywhere: precision/recall/f1/iou are 0/0 -> 0 (torchmetrics'
        # zero_division=0); kappa has p_e = 1 -> 0 by convention.
        zeros = torch.zeros(3, 3, dtype=torch.long)
        result = run_metric(ChangeMetric(), [[make_sample(zeros, zeros)]])
        for key in ('precision', 'recall', 'f1', 'iou', 'kappa'):
            assert result[key] == 0.0 and not math.isnan(result[key]), key
        assert result['oa'] == 1.0
        assert result['iou_unchanged'] == 1.0
        assert result['miou'] == 0.5

    def test_registry_build(self) -> None:
        metric = METRICS.build(dict(type='ChangeMetric', percent=True, prefix='val'))
        assert isinstance(metric, ChangeMetric) and metric.percent


class TestBinaryFunctional:

    def test_confusion_matrix_orientation_and_ignore(self) -> None:
        gt = np.array([0, 0, 1, 1, 255])
        pred = np.array([0, 1, 1, 0, 1])
        np.testing.assert_array_equal(confusion_matrix(pred, gt, 2), [[1, 1], [1, 1]])
        gt2 = np.array([1, 1, 1, 0])
        pred2 = np.array([1, 1, 0, 0])
        np.testing.assert_array_equal(confusion_matrix(pred2, gt2, 2), [[1, 0], [1, 2]])

    def test_torch_and_numpy_agree(self, random_batches) -> None:
        _, preds, gts = random_batches
        np.testing.assert_array_equal(
            confusion_matrix(preds[0], gts[0], 2),
            confusion_matrix(preds[0].numpy(), gts[0].numpy(), 2))

    def test_shape_mismatch(self) -> None:
        with pytest.raises(ValueError, match=r'\(2, 3\).*\(3, 2\)'):
            confusion_matrix(np.zeros((2, 3), int), np.zeros((3, 2), int), 2)

    def test_binary_metrics_rejects_non_2x2(self) -> None:
        with pytest.raises(ValueError, match='2x2'):
            binary_metrics(np.zeros((3, 3)))
