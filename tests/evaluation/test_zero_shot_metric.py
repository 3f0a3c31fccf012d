"""ZeroShotAccuracy and its pure functions against torchmetrics and a brute-force oracle.

torchmetrics' ``MulticlassAccuracy`` (micro top-k, and per-class with ``average=None``) is
the independent reference on random scores; tied scores are compared with torchmetrics for
top-1 and per-class (both break ties towards the lower index, as ``argmax``) and with a
stable-sort oracle for top-k.
"""
import numpy as np
import pytest
import torch
from mmpretrain.structures import DataSample

from mmrs.evaluation.metrics.zero_shot_metric import (ZeroShotAccuracy, classification_accuracy,
                                                      per_class_accuracy, topk_correct)
from mmrs.registry import METRICS

torchmetrics = pytest.importorskip('torchmetrics')
from torchmetrics.classification import MulticlassAccuracy  # noqa: E402

torch.set_num_threads(1)


def tm(scores: np.ndarray, labels: np.ndarray, **kwargs) -> np.ndarray:
    metric = MulticlassAccuracy(num_classes=scores.shape[1], **kwargs)
    return 100 * metric(torch.from_numpy(scores), torch.from_numpy(labels)).numpy()


def stable_topk_oracle(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    order = np.argsort(-scores, axis=1, kind='stable')  # ties: lower index first
    return np.array([lab in row[:k] for row, lab in zip(order, labels)])


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_matches_torchmetrics_on_random_scores(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.random((300, 9)).astype(np.float32)
    labels = rng.integers(0, 9, 300)
    scores[np.arange(300)[:100], labels[:100]] += 0.5  # make it better than chance
    report = classification_accuracy(scores, labels, topk=(1, 5))
    assert report['top1'] == pytest.approx(float(tm(scores, labels, average='micro')))
    assert report['top5'] == pytest.approx(float(tm(scores, labels, average='micro',
                                                    top_k=5)))
    np.testing.assert_allclose(report['per_class'], tm(scores, labels, average=None),
                               rtol=1e-5)
    assert report['mean_per_class'] == pytest.approx(float(tm(scores, labels,
                                                              average='macro')), rel=1e-5)


@pytest.mark.parametrize('seed', [0, 1])
def test_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 3, (400, 8)).astype(np.float32)  # many ties
    labels = rng.integers(0, 8, 400)
    report = classification_accuracy(scores, labels, topk=(1, 3, 5))
    assert report['top1'] == pytest.approx(float(tm(scores, labels, average='micro')))
    np.testing.assert_allclose(report['per_class'], tm(scores, labels, average=None),
                               rtol=1e-5)
    for k in (1, 3, 5):
        np.testing.assert_array_equal(topk_correct(scores, labels, k),
                                      stable_topk_oracle(scores, labels, k))
        assert report[f'top{k}'] == pytest.approx(
            100 * stable_topk_oracle(scores, labels, k).mean())


def test_all_equal_scores_pick_class_zero() -> None:
    scores = np.zeros((4, 3))
    labels = np.array([0, 1, 2, 2])
    assert topk_correct(scores, labels, 1).tolist() == [True, False, False, False]
    assert topk_correct(scores, labels, 2).tolist() == [True, True, False, False]
    assert topk_correct(scores, labels, 3).all() and topk_correct(scores, labels, 7).all()


def test_absent_classes_are_nan_and_left_out_of_the_mean() -> None:
    scores = np.eye(4)[[0, 0, 1, 3]]  # predictions 0, 0, 1, 3
    labels = np.array([0, 1, 1, 3])   # class 2 never occurs
    per = per_class_accuracy(scores.argmax(1), labels, 4)
    assert per[0] == 1.0 and per[1] == 0.5 and np.isnan(per[2]) and per[3] == 1.0
    assert classification_accuracy(scores, labels)['mean_per_class'] == pytest.approx(
        100 * 2.5 / 3)


@pytest.mark.parametrize('scores,labels,match', [
    (np.array([[0.1, np.nan]]), np.array([0]), 'NaN'),
    (np.array([[0.1, 0.2]]), np.array([2]), 'labels must be'),
    (np.ones((2, 3)), np.array([0]), r'\(N, C\)'),
])
def test_bad_input(scores, labels, match) -> None:
    with pytest.raises(ValueError, match=match):
        classification_accuracy(scores, labels)


def test_metric_class_gathers_data_samples() -> None:
    metric = METRICS.build(dict(type='ZeroShotAccuracy', topk=(1, 2), per_class_results=True))
    assert isinstance(metric, ZeroShotAccuracy)
    metric.dataset_meta = dict(classes=('a_b', 'c', 'd'), display_names=('a b', 'c', 'd'))
    samples = []
    for score, label in [([0.7, 0.2, 0.1], 0), ([0.5, 0.3, 0.2], 1), ([0.1, 0.1, 0.8], 2),
                         ([0.2, 0.5, 0.3], 1)]:
        sample = DataSample().set_gt_label(label).set_pred_score(torch.tensor(score))
        samples.append(sample.to_dict())
    metric.process(None, samples)
    out = metric.evaluate(size=4)
    assert out['accuracy/top1'] == 75.0 and out['accuracy/top2'] == 100.0
    assert out['accuracy/class/a b'] == 100.0 and out['accuracy/class/c'] == 50.0
    assert out['accuracy/mean_per_class'] == pytest.approx(250 / 3)
    with pytest.raises(KeyError, match='pred_score'):
        metric.process(None, [dict(gt_label=torch.tensor([0]))])
    with pytest.raises(ValueError, match='topk'):
        ZeroShotAccuracy(topk=(0, ))
