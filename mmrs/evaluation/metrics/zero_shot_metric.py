"""Scene classification accuracy from class scores: top-k, per-class and mean per-class.

The arithmetic is in pure functions on numpy arrays (:func:`topk_correct`,
:func:`per_class_accuracy`, :func:`classification_accuracy`); :class:`ZeroShotAccuracy` only
gathers ``pred_score`` / ``gt_label`` from the data samples and delegates.

Ties. A sample is top-``k`` correct when its true class ranks among the first ``k`` after
sorting the scores in descending order with ties broken towards the *lower class index*
(the order ``argmax`` and a stable sort give). Top-1 is therefore "``argmax == label``", as
in torchmetrics, mmpretrain and the papers' ``output.topk`` code on untied scores; without
a rule, tied top-k results would depend on the ``topk`` kernel.

Mean per-class accuracy is the mean over the classes present in the ground truth of the
fraction of their samples predicted correctly (top-1), i.e. macro-averaged recall (ITRA's
``mean_class_accuracy``). Classes with no sample have no accuracy (NaN) and are left out of
the mean. All values are percentages.
"""
from collections.abc import Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from mmrs.registry import METRICS


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
        raise ValueError(f'scores must be (N, C) for N={labels.shape[0]} labels, got '
                         f'{scores.shape}')
    if not np.isfinite(scores).all():
        raise ValueError('scores hold NaN or infinite values')
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(f'labels must be in 0..{scores.shape[1] - 1}, got '
                         f'{labels.min()}..{labels.max()}')
    return scores, labels.astype(np.int64)


def topk_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Whether each sample's true class is among its ``k`` best-scored ``(N,)`` bool.

    The rank of the true class is the number of classes scored higher plus the number
    scored equal with a lower index (module docstring); ``k >= C`` is always correct.
    """
    if int(k) < 1:
        raise ValueError(f'k must be >= 1, got {k}')
    scores, labels = _check(scores, labels)
    rows = np.arange(len(labels))
    true = scores[rows, labels][:, None]
    lower = np.arange(scores.shape[1])[None, :] < labels[:, None]
    rank = (scores > true).sum(1) + ((scores == true) & lower).sum(1)
    return rank < int(k)


def top1_prediction(scores: np.ndarray) -> np.ndarray:
    """``argmax`` of each row (first index on ties), ``(N,)``."""
    return np.asarray(scores).argmax(axis=1)


def per_class_accuracy(predictions: np.ndarray, labels: np.ndarray,
                       num_classes: int) -> np.ndarray:
    """Fraction of each class's samples predicted as that class ``(C,)``; NaN for classes
    without samples."""
    predictions = np.asarray(predictions).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    total = np.bincount(labels, minlength=num_classes).astype(np.float64)
    hits = np.bincount(labels[predictions == labels], minlength=num_classes).astype(np.float64)
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(total > 0, hits / np.maximum(total, 1), np.nan)


def classification_accuracy(scores: np.ndarray, labels: np.ndarray,
                            topk: Sequence[int] = (1, 5)) -> dict[str, object]:
    """Top-k accuracies, per-class accuracies and their mean, in percent.

    Returns:
        ``{'top1': ..., 'top5': ..., 'mean_per_class': ..., 'per_class': array (C,)}``.
    """
    scores, labels = _check(scores, labels)
    if not len(labels):
        raise ValueError('no samples to evaluate')
    out: dict[str, object] = {
        f'top{k}': 100.0 * float(topk_correct(scores, labels, k).mean()) for k in topk}
    per_class = 100.0 * per_class_accuracy(top1_prediction(scores), labels, scores.shape[1])
    out['mean_per_class'] = float(np.nanmean(per_class))
    out['per_class'] = per_class
    return out


@METRICS.register_module()
class ZeroShotAccuracy(BaseMetric):
    """Top-k, mean per-class and (optionally) per-class accuracy of scene classification.

    Consumes data samples with ``pred_score`` ``(C,)`` and ``gt_label`` (what
    :class:`mmrs.models.clip.zero_shot.CLIPZeroShotClassifier` and mmpretrain classifiers
    produce). Keys: ``accuracy/top1``, ``accuracy/top5``, ``accuracy/mean_per_class`` and,
    with ``per_class_results``, ``accuracy/class/<name>`` (names from the dataset's
    ``display_names`` or ``classes``; classes without samples are omitted).

    Args:
        topk: The k of the top-k accuracies.
        per_class_results: Also report every class's accuracy.
        collect_device: ``'cpu'`` or ``'gpu'`` for gathering results across ranks.
        prefix: Key prefix (default ``'accuracy'``).
    """

    default_prefix = 'accuracy'

    def __init__(self, topk: int | Sequence[int] = (1, 5), per_class_results: bool = False,
                 collect_device: str = 'cpu', prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = (int(topk), ) if isinstance(topk, int) else tuple(int(k) for k in topk)
        if not self.topk or min(self.topk) < 1:
            raise ValueError(f'topk must be positive integers, got {topk}')
        self.per_class_results = per_class_results

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            if 'pred_score' not in sample or 'gt_label' not in sample:
                raise KeyError(f'ZeroShotAccuracy needs pred_score and gt_label in each data '
                               f'sample; got keys {sorted(sample)}')
            score, label = sample['pred_score'], sample['gt_label']
            score = score.detach().cpu().numpy() if hasattr(score, 'detach') else score
            label = label.reshape(-1)[0] if hasattr(label, 'reshape') else label
            self.results.append(dict(score=np.asarray(score, dtype=np.float64),
                                     label=int(label)))

    def compute_metrics(self, results: list[dict]) -> dict[str, float]:
        scores = np.stack([r['score'] for r in results])
        labels = np.array([r['label'] for r in results])
        report = classification_accuracy(scores, labels, self.topk)
        per_class = report.pop('per_class')
        metrics = {k: float(v) for k, v in report.items()}
        if self.per_class_results:
            meta = self.dataset_meta or {}
            names = meta.get('display_names') or meta.get('classes') or \
                [str(i) for i in range(scores.shape[1])]
            for name, value in zip(names, per_class):
                if not np.isnan(value):
                    metrics[f'class/{name}'] = float(value)
        return metrics
