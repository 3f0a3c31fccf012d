"""DOTA Task1 mAP for the runner, as the official devkit (default) or as mmrotate 1.x.

mmrotate's ``DOTAMetric`` differs from the official ``dota_evaluation_task1.py`` (``>=`` instead
of ``>`` at the threshold, rotated-box IoU of the fitted rectangles instead of polygon IoU,
float32, mean over the classes that have ground truth, ...: the full list is in
:mod:`mmrs.evaluation.dota_eval` and ``docs/dota_evaluation.md``). :class:`DOTADevkitMetric`
computes the devkit's numbers from the same data samples (``mode='devkit'``) or mmrotate's
(``mode='mmrotate'``), so a config can report either without writing submission files.
"""
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from mmrs.registry import METRICS

from ..dota_eval import ClassData, check_options, dota_map


def _field(container: Any, key: str) -> Any:
    """``container[key]`` of a data-sample dict or attribute of an ``InstanceData``."""
    if container is None:
        return None
    if isinstance(container, Mapping):
        return container.get(key)
    return getattr(container, key, None)


def boxes_to_numpy(boxes: Any) -> np.ndarray:
    """``(N, 5)`` rotated or ``(N, 8)`` quadrilateral boxes as a float64 array.

    Accepts mmrotate box types (``RotatedBoxes``/``QuadriBoxes``: their ``tensor``), tensors
    and arrays.
    """
    boxes = getattr(boxes, 'tensor', boxes)
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().numpy()
    boxes = np.asarray(boxes)
    if boxes.size == 0:
        return np.zeros((0, boxes.shape[-1] if boxes.ndim == 2 else 5), dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] not in (5, 8):
        raise ValueError(f'boxes must be (N, 5) rotated or (N, 8) quadrilateral, got shape '
                         f'{boxes.shape}')
    return boxes


def _to_numpy(x: Any, dtype: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray([] if x is None else x).astype(dtype).reshape(-1)


def _to_width(boxes: np.ndarray, width: int) -> np.ndarray:
    """Convert boxes to ``width`` columns with mmrotate's converters (``rbox2qbox``;
    ``qbox2rbox``, the minimum-area rectangle, as ``mmrotate.ConvertBoxType`` does)."""
    from mmrotate.structures.bbox import qbox2rbox, rbox2qbox
    if boxes.shape[1] == width:
        return boxes
    if len(boxes) == 0:
        return np.zeros((0, width), dtype=boxes.dtype)
    if width == 8:
        return rbox2qbox(torch.from_numpy(np.asarray(boxes, np.float64))).numpy()
    return qbox2rbox(torch.from_numpy(np.asarray(boxes, np.float32))).numpy()


@METRICS.register_module()
class DOTADevkitMetric(BaseMetric):
    """Per-class AP and mAP of DOTA Task1, devkit-exact or mmrotate-equal.

    ``process`` reads from each data sample ``pred_instances`` (``bboxes`` rotated
    ``(cx, cy, w, h, a)`` boxes, le90, or quadrilaterals; ``scores``; ``labels``) and the
    ground truth ``gt_instances`` (``bboxes``, ``labels``, optional ``ignore_flags``) plus
    ``ignored_instances`` (where ``mmdet.PackDetInputs`` puts the objects whose
    ``gt_ignore_flags`` is set: ``DOTARawDataset`` sets it for ``difficult`` ones).

    In devkit mode predictions are compared as polygons with the ground-truth polygons: keep
    the ground truth as quadrilaterals (``box_type='qbox'``, no ``ConvertBoxType``) to score
    against the original annotation; rotated ground truth is turned into its rectangle. In
    mmrotate mode rotated predictions meet rotated ground truth (quadrilaterals are fitted
    with ``qbox2rbox`` first), as mmrotate's ``DOTAMetric`` sees them after its pipeline.

    Args:
        iou_thrs: IoU threshold(s); the reported ``mAP`` is their mean.
        metric: ``'voc07'`` (11-point, the DOTA server's) or ``'area'``.
        mode: ``'devkit'`` or ``'mmrotate'``.
        classwise: also report ``AP{thr}_<class>`` for every class.
        collect_device: see :class:`mmengine.evaluator.BaseMetric`.
        prefix: metric name prefix; defaults to ``dota``.
    """

    default_prefix: str | None = 'dota'

    def __init__(self, iou_thrs: float | Sequence[float] = 0.5, metric: str = 'voc07',
                 mode: str = 'devkit', classwise: bool = True, collect_device: str = 'cpu',
                 prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        check_options(mode, metric)
        self.iou_thrs = [float(iou_thrs)] if isinstance(iou_thrs, (int, float)) else [
            float(t) for t in iou_thrs]
        if not self.iou_thrs or not all(0 <= t < 1 for t in self.iou_thrs):
            raise ValueError(f'iou_thrs must be in [0, 1), got {iou_thrs!r}')
        self.metric = metric
        self.mode = mode
        self.classwise = classwise

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Keep each sample's predictions and ground truth as numpy arrays."""
        for sample in data_samples:
            pred = _field(sample, 'pred_instances')
            gt = _field(sample, 'gt_instances')
            if pred is None or gt is None:
                raise KeyError('DOTADevkitMetric needs pred_instances and gt_instances in '
                               'every data sample')
            gt_boxes = boxes_to_numpy(_field(gt, 'bboxes'))
            gt_labels = _to_numpy(_field(gt, 'labels'), np.int64)
            flags = _field(gt, 'ignore_flags')
            gt_ignore = (np.zeros(len(gt_labels), bool) if flags is None else
                         _to_numpy(flags, bool))
            ignored = _field(sample, 'ignored_instances')
            ign_boxes = _field(ignored, 'bboxes')
            if ign_boxes is not None and len(_to_numpy(_field(ignored, 'labels'), np.int64)):
                ign = boxes_to_numpy(ign_boxes)
                if gt_boxes.shape[1] != ign.shape[1]:
                    ign = _to_width(ign, gt_boxes.shape[1])
                gt_boxes = np.concatenate([gt_boxes, ign])
                ign_labels = _to_numpy(_field(ignored, 'labels'), np.int64)
                gt_labels = np.concatenate([gt_labels, ign_labels])
                gt_ignore = np.concatenate([gt_ignore, np.ones(len(ign_labels), bool)])
            if not len(gt_labels) == len(gt_boxes) == len(gt_ignore):
                raise ValueError('ground truth bboxes, labels and ignore flags differ in length')
            scores = _field(pred, 'scores')
            if isinstance(scores, torch.Tensor):  # keep the model's dtype (full precision)
                scores = scores.detach().cpu().numpy()
            self.results.append(dict(
                pred_boxes=boxes_to_numpy(_field(pred, 'bboxes')),
                pred_scores=np.asarray(scores).reshape(-1),
                pred_labels=_to_numpy(_field(pred, 'labels'), np.int64),
                gt_boxes=gt_boxes, gt_labels=gt_labels, gt_ignore=gt_ignore))

    def _class_data(self, results: list[dict], num_classes: int) -> list[ClassData]:
        """Per-class flat arrays; detections in image order, then in the model's order."""
        pred_width = 8 if any(r['pred_boxes'].shape[1] == 8 and len(r['pred_boxes'])
                              for r in results) else 5
        width = 8 if self.mode == 'devkit' else pred_width
        cat = {key: [] for key in ('di', 'ds', 'db', 'dl', 'gi', 'gb', 'gl', 'gg')}
        for i, r in enumerate(results):
            cat['di'].append(np.full(len(r['pred_scores']), i))
            cat['ds'].append(r['pred_scores'])
            cat['db'].append(_to_width(r['pred_boxes'], width))
            cat['dl'].append(r['pred_labels'])
            cat['gi'].append(np.full(len(r['gt_labels']), i))
            cat['gb'].append(_to_width(r['gt_boxes'], width))
            cat['gl'].append(r['gt_labels'])
            cat['gg'].append(r['gt_ignore'])
        a = {k: np.concatenate(v) if v else np.zeros(0) for k, v in cat.items()}
        a['db'] = a['db'].reshape(-1, width)
        a['gb'] = a['gb'].reshape(-1, width)
        data = []
        for c in range(num_classes):
            d, g = a['dl'] == c, a['gl'] == c
            data.append(ClassData(a['di'][d].astype(np.int64), a['ds'][d], a['db'][d],
                                  a['gi'][g].astype(np.int64), a['gb'][g],
                                  a['gg'][g].astype(bool)))
        return data

    def compute_metrics(self, results: list) -> dict[str, float]:
        """``AP{thr}`` per threshold, their mean ``mAP`` and (``classwise``) per-class AP."""
        classes = tuple((self.dataset_meta or {}).get('classes', ()))
        if not classes:
            raise ValueError('DOTADevkitMetric needs dataset_meta["classes"]')
        per_class = self._class_data(results, len(classes))
        out: dict[str, float] = {}
        means = []
        for thr in self.iou_thrs:
            res = dota_map(per_class, classes, len(results), thr, self.metric, self.mode)
            tag = f'AP{int(round(thr * 100)):02d}'
            out[tag] = res['mAP']
            means.append(res['mAP'])
            if self.classwise:
                out.update({f'{tag}_{c}': ap for c, ap in res['AP'].items()})
        summary = {'mAP': float(np.mean(means))}
        summary.update(out)
        MMLogger.get_current_instance().info(
            f'DOTA ({self.mode}, {self.metric}) mAP {summary["mAP"]:.4f}')
        return summary
