"""Binary change-detection metric: precision, recall, F1, IoU, OA and kappa of "changed".

open-cd reports mmseg's per-class IoU/F-score (no OA, no kappa); MambaCD (Chen et al.,
"ChangeMamba", IEEE TGRS 2024) reports OA, F1, IoU and Cohen's kappa of the changed class.
:class:`ChangeMetric` reports all of them from one 2x2 confusion matrix accumulated over the
whole evaluation set (micro-averaged, as both projects do), so numbers are comparable with
either. The arithmetic lives in :mod:`mmrs.evaluation.functional`.
"""
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from mmengine.evaluator import BaseMetric

from mmrs.registry import METRICS
from mmrs.structures.geometry import restore_label_map, sample_meta

from ..functional import IGNORE_INDEX, ArrayLike, binary_metrics, confusion_matrix


def get_label_map(data_sample: Any, key: str) -> ArrayLike:
    """Return the ``data`` tensor of the ``PixelData`` field ``key`` of a data sample.

    Works on the dict that mmengine's evaluator passes (``ChangeDataSample.to_dict()``) and on
    a ``ChangeDataSample`` itself, so the metric can also be driven by hand.

    Raises:
        KeyError: When the sample has no such field, naming the fields it has.
    """
    if isinstance(data_sample, Mapping):
        field = data_sample.get(key)
        data = field.get('data') if isinstance(field, Mapping) else None
        available = sorted(data_sample)
    else:
        field = getattr(data_sample, key, None)
        data = getattr(field, 'data', None)
        available = sorted(data_sample.keys())
    if data is None:
        raise KeyError(f'data sample has no {key!r} label map (fields: {available})')
    return data


def describe_sample(data_sample: Any) -> str:
    """Short identification of a sample for error messages (image paths or index)."""
    get = data_sample.get if isinstance(data_sample, Mapping) else (
        lambda k: data_sample.metainfo.get(k))
    for key in ('img_path', 'sample_idx'):
        value = get(key)
        if value is not None:
            return f'{key}={value}'
    return 'unknown sample'


def gt_on_prediction_grid(data_sample: Any, gt_key: str, pred: ArrayLike) -> ArrayLike:
    """The ground-truth map ``gt_key`` of a sample at the size of its prediction ``pred``.

    Predictions are at the original size (``ori_shape``); labels loaded after the test
    pipeline's geometric transforms are too, labels loaded before them are brought back with
    :func:`mmrs.structures.restore_label_map` (pipeline padding cut off, flips undone).

    Raises:
        ValueError: Naming the sample, when the label cannot be brought to that size.
    """
    return restore_label_map(get_label_map(data_sample, gt_key), sample_meta(data_sample),
                             tuple(pred.shape[-2:]), field=gt_key,
                             where=describe_sample(data_sample))


def scale_metrics(metrics: dict[str, float], percent: bool) -> dict[str, float]:
    """Return ``metrics`` as plain floats, multiplied by 100 when ``percent`` is set."""
    factor = 100.0 if percent else 1.0
    return {key: float(value) * factor for key, value in metrics.items()}


@METRICS.register_module()
class ChangeMetric(BaseMetric):
    """Binary change detection scores of the "changed" class.

    ``process`` reads ``pred_sem_seg`` and ``gt_sem_seg`` (``(1, H, W)``, 0 = unchanged,
    1 = changed, ``ignore_index`` = not evaluated) of every sample and stores only the sample's
    2x2 confusion matrix (four integers), so memory stays constant however large the scenes
    are. ``compute_metrics`` sums the matrices and reports:

    ===================  ===========================================================
    key                  meaning
    ===================  ===========================================================
    ``precision``        TP / (TP + FP) of "changed"
    ``recall``           TP / (TP + FN)
    ``f1``               2 TP / (2 TP + FP + FN)
    ``iou``              TP / (TP + FP + FN) of "changed"
    ``iou_unchanged``    TN / (TN + FN + FP), IoU of "unchanged"
    ``miou``             (iou + iou_unchanged) / 2 (open-cd / MambaCD "mIoU")
    ``oa``               (TP + TN) / all evaluated pixels
    ``kappa``            Cohen's kappa of the 2x2 matrix
    ===================  ===========================================================

    **Undefined ratios** follow torchmetrics' ``zero_division=0``: a ratio whose denominator is
    0 is reported as 0, never NaN (e.g. no change predicted and none in the ground truth gives
    precision = recall = f1 = iou = 0). Kappa is 0 when the chance agreement is 1 (a single
    class everywhere); torchmetrics returns NaN there.

    Predictions are at the original size (``ori_shape``); ground truth is compared at that
    size too: labels padded (or flipped) with the image in the test pipeline are restored
    first, and a label that the pipeline resized is an error telling to load the
    annotations after the geometric transforms (see :func:`gt_on_prediction_grid`).

    Predictions may come from a 2-class softmax head (argmax) or a 1-class sigmoid head that
    is already thresholded: either way they must be 0/1 (bool or integral floats are
    accepted). Any other value at an evaluated pixel raises ``ValueError`` naming the values
    and the sample, because silently dropping or clipping them would falsify the scores.

    Args:
        ignore_index: Ground-truth value excluded from evaluation. Defaults to 255.
        percent: Report values multiplied by 100 (as papers print them) instead of fractions
            in [0, 1]. Defaults to False.
        collect_device: Device used to gather results across processes ('cpu' or 'gpu').
        prefix: Prefix added to every key (``'prefix/key'``). Defaults to None.
        collect_dir: Directory for cross-process collection when ``collect_device='cpu'``.
    """

    def __init__(self,
                 ignore_index: int = IGNORE_INDEX,
                 percent: bool = False,
                 collect_device: str = 'cpu',
                 prefix: str | None = None,
                 collect_dir: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.ignore_index = ignore_index
        self.percent = percent

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Store the 2x2 confusion matrix of every sample of the batch.

        Args:
            data_batch: The batch from the dataloader (unused).
            data_samples: Model outputs, as dicts (``ChangeDataSample.to_dict()``) or
                ``ChangeDataSample`` objects, with ``pred_sem_seg`` and ``gt_sem_seg``.
        """
        for data_sample in data_samples:
            where = describe_sample(data_sample)
            pred = get_label_map(data_sample, 'pred_sem_seg')
            self.results.append(
                confusion_matrix(
                    pred,
                    gt_on_prediction_grid(data_sample, 'gt_sem_seg', pred),
                    num_classes=2,
                    ignore_index=self.ignore_index,
                    pred_name=f'pred_sem_seg ({where})',
                    target_name=f'gt_sem_seg ({where})'))

    def compute_metrics(self, results: list[np.ndarray]) -> dict[str, float]:
        """Sum the per-sample matrices and derive the scores (see the class docstring)."""
        cm = np.zeros((2, 2), dtype=np.int64)
        for sample_cm in results:
            cm += np.asarray(sample_cm, dtype=np.int64)
        return scale_metrics(binary_metrics(cm), self.percent)
