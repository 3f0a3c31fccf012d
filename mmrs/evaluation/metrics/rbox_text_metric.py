"""Scores for detectors without confidences: LMMRotate's mAP_nc and mean F1.

A language model that writes boxes as text gives no scores, so ranking-based AP is not
defined. LMMRotate (Li et al., arXiv 2501.09720, ``lmmrotate/eval.py``) gives every parsed box
the score 1 and runs mmrotate's ``DOTAMetric`` (rotated-box IoU >= 0.5, difficult objects
ignored, VOC07 11-point AP, mean over classes that have ground truth): that is **mAP_nc**.
With all scores equal, the order of detections is whatever ``np.argsort(-scores)`` leaves:
here it is the stable order (images in evaluation order, boxes in the order of the text), which
is what numpy's sort gives on small arrays and is reproducible. For detectors that do give
scores, LMMRotate keeps the boxes above each of a list of thresholds, sets their scores to 1
and reports the best mAP (``playground/eval_mmrotate_detector_mapnc.py``): ``score_thrs``.

F1 comes in two definitions, both reported:

- ``mF1`` (greedy, per class): in each image and class, detection/ground-truth pairs with
  IoU >= ``iou_thr`` are matched one to one in order of decreasing IoU (order-free, as there
  are no scores); unmatched detections overlapping a difficult object by >= ``iou_thr`` are
  neither TP nor FP. Per class P = TP / (TP + FP), R = TP / (TP + FN), F1 = 2PR / (P + R)
  (0 when undefined), averaged over the classes that have ground truth or detections.
- ``mF1_lmmrotate``: ``lmmrotate/modules/f1_metric.py``: a (C+1)x(C+1) confusion matrix where
  a detection adds 1 to (gt class, det class) for *every* ground truth it overlaps by
  >= ``iou_thr`` (no one-to-one matching), 1 to (background, det class) when it overlaps none,
  and each ground truth never hit by its own class adds 1 to (gt class, background); difficult
  objects are not ground truth there (detections on them count as background FP). Precision
  and recall per row/column are averaged over all C+1 entries, background included (it has
  TP = 0), and F1 = 2 mP mR / (mP + mR). So every class absent from the set lowers it: LMMRotate
  takes the class count from the largest ground-truth label (``lmmrotate_classes='gt'``, the
  default; a larger detected label widens the matrix where LMMRotate would fail), or use the
  dataset's (``'dataset'``).

Rotated IoU is mmcv's ``box_iou_rotated`` (CPU or CUDA), as mmrotate's metric uses.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from mmcv.ops import box_iou_rotated
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from mmrs.evaluation.dota_eval import mmdet_average_precision
from mmrs.registry import METRICS
from mmrs.structures.box_text import RotatedBoxTextCodec, poly_to_rbox

ImageResult = dict[str, np.ndarray]
"""Per image: ``det_boxes (N, 5)``, ``det_labels (N,)``, optional ``det_scores (N,)``,
``gt_boxes (M, 5)``, ``gt_labels (M,)``, ``ignored_boxes (K, 5)``, ``ignored_labels (K,)``."""


def rotated_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU ``(N, M)`` of rotated boxes (cx, cy, w, h, θ radians), mmcv ``box_iou_rotated``."""
    if len(boxes1) == 0 or len(boxes2) == 0:
        return np.zeros((len(boxes1), len(boxes2)), dtype=np.float32)
    return box_iou_rotated(torch.as_tensor(boxes1, dtype=torch.float32),
                           torch.as_tensor(boxes2, dtype=torch.float32)).numpy()


def average_precision(recalls: np.ndarray, precisions: np.ndarray,
                      mode: str = '11points') -> float:
    """VOC AP of a precision/recall curve: ``'11points'`` (VOC07) or ``'area'``, summed in
    float32 as mmdet's ``average_precision``, which LMMRotate's evaluation (through mmrotate's
    ``eval_rbbox_map``) uses (:func:`mmrs.evaluation.dota_eval.mmdet_average_precision`)."""
    if mode not in ('11points', 'area'):
        raise ValueError(f"mode must be '11points' or 'area', got {mode!r}")
    return mmdet_average_precision(np.asarray(recalls, np.float64),
                                   np.asarray(precisions, np.float64),
                                   use_07_metric=mode == '11points')


def _of_class(result: ImageResult, key: str, cls: int) -> np.ndarray:
    return result[f'{key}_boxes'][result[f'{key}_labels'] == cls]


def map_no_confidence(results: Sequence[ImageResult], num_classes: int, iou_thr: float = 0.5,
                      mode: str = '11points') -> tuple[float, list[float], list[int]]:
    """LMMRotate's mAP_nc: every detection scored 1, in stable (image, text) order.

    Matching per image as mmrotate's ``tpfp_default``: each detection takes the ground truth
    (difficult ones included) it overlaps most; IoU >= ``iou_thr`` and not yet taken is a TP,
    taken is an FP, a difficult one is neither; lower IoU is an FP.

    Returns:
        mAP over classes with ground truth (0 when none has), AP per class, GT count per class.
    """
    aps, num_gts = [], []
    for cls in range(num_classes):
        tps, fps, n_gt = [], [], 0
        for res in results:
            dets, gts = _of_class(res, 'det', cls), _of_class(res, 'gt', cls)
            ign = _of_class(res, 'ignored', cls)
            n_gt += len(gts)
            tp, fp = np.zeros(len(dets)), np.zeros(len(dets))
            if len(dets):
                ious = rotated_iou(dets, np.concatenate([gts, ign]).reshape(-1, 5))
                if ious.shape[1] == 0:
                    fp[:] = 1
                else:
                    best, arg = ious.max(axis=1), ious.argmax(axis=1)
                    covered = np.zeros(ious.shape[1], dtype=bool)
                    for i in range(len(dets)):
                        if best[i] < iou_thr:
                            fp[i] = 1
                        elif arg[i] >= len(gts):
                            continue  # a difficult object: neither TP nor FP
                        elif covered[arg[i]]:
                            fp[i] = 1
                        else:
                            covered[arg[i]], tp[i] = True, 1
            tps.append(tp)
            fps.append(fp)
        tp_cum, fp_cum = np.cumsum(np.concatenate(tps)), np.cumsum(np.concatenate(fps))
        eps = np.finfo(np.float32).eps
        recalls = tp_cum / max(n_gt, eps)
        precisions = tp_cum / np.maximum(tp_cum + fp_cum, eps)
        aps.append(average_precision(recalls, precisions, mode))
        num_gts.append(n_gt)
    valid = [ap for ap, n in zip(aps, num_gts) if n > 0]
    return (float(np.mean(valid)) if valid else 0.0), aps, num_gts


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


def f1_greedy(results: Sequence[ImageResult], num_classes: int, iou_thr: float = 0.5
              ) -> dict[str, Any]:
    """Per-class TP/FP/FN with one-to-one matching in decreasing IoU, and their P, R, F1.

    Returns:
        ``mF1``, ``precision``, ``recall`` (means over classes with ground truth or
        detections) and per-class lists ``f1``, ``tp``, ``fp``, ``fn``.
    """
    tp, fp, fn = np.zeros(num_classes), np.zeros(num_classes), np.zeros(num_classes)
    for res in results:
        for cls in range(num_classes):
            dets, gts = _of_class(res, 'det', cls), _of_class(res, 'gt', cls)
            ign = _of_class(res, 'ignored', cls)
            ious = rotated_iou(dets, gts)
            det_i, gt_j = np.nonzero(ious >= iou_thr)
            order = np.lexsort((gt_j, det_i, -ious[det_i, gt_j]))
            used_d, used_g = np.zeros(len(dets), bool), np.zeros(len(gts), bool)
            for k in order:
                d, g = det_i[k], gt_j[k]
                if not used_d[d] and not used_g[g]:
                    used_d[d] = used_g[g] = True
            on_ignored = (rotated_iou(dets, ign) >= iou_thr).any(axis=1) if len(ign) else \
                np.zeros(len(dets), bool)
            tp[cls] += used_d.sum()
            fp[cls] += (~used_d & ~on_ignored).sum()
            fn[cls] += (~used_g).sum()
    prec = [_ratio(tp[c], tp[c] + fp[c]) for c in range(num_classes)]
    rec = [_ratio(tp[c], tp[c] + fn[c]) for c in range(num_classes)]
    f1 = [_ratio(2 * p * r, p + r) for p, r in zip(prec, rec)]
    present = [c for c in range(num_classes) if tp[c] + fp[c] + fn[c] > 0]

    def mean(values: list[float]) -> float:
        return float(np.mean([values[c] for c in present])) if present else 0.0

    return dict(mF1=mean(f1), precision=mean(prec), recall=mean(rec), f1=f1,
                tp=tp.tolist(), fp=fp.tolist(), fn=fn.tolist())


def lmmrotate_confusion_matrix(results: Sequence[ImageResult], num_classes: int,
                               iou_thr: float = 0.5) -> np.ndarray:
    """LMMRotate's ``(C+1, C+1)`` matrix: rows ground truth, columns detections, last background."""
    matrix = np.zeros((num_classes + 1, num_classes + 1))
    for res in results:
        gt_labels = res['gt_labels']
        hit = np.zeros(len(gt_labels))
        ious = rotated_iou(res['det_boxes'], res['gt_boxes'])
        for i, det_label in enumerate(res['det_labels']):
            over = np.flatnonzero(ious[i] >= iou_thr)
            for j in over:
                matrix[gt_labels[j], det_label] += 1
                hit[j] += gt_labels[j] == det_label
            if len(over) == 0:
                matrix[-1, det_label] += 1
        for j in np.flatnonzero(hit == 0):
            matrix[gt_labels[j], -1] += 1
    return matrix


def f1_lmmrotate(results: Sequence[ImageResult], num_classes: int, iou_thr: float = 0.5
                 ) -> tuple[float, float, float]:
    """LMMRotate's (mean precision, mean recall, F1) from :func:`lmmrotate_confusion_matrix`."""
    matrix = lmmrotate_confusion_matrix(results, num_classes, iou_thr)
    tp = np.diag(matrix)
    col, row = matrix.sum(axis=0), matrix.sum(axis=1)
    mean_p = float(np.mean(tp / np.where(col == 0, 1, col)))
    mean_r = float(np.mean(tp / np.where(row == 0, 1, row)))
    return mean_p, mean_r, _ratio(2 * mean_p * mean_r, mean_p + mean_r)


def _field(sample: Any, key: str) -> Any:
    return sample.get(key) if isinstance(sample, Mapping) else getattr(sample, key, None)


def _rboxes(boxes: Any, where: str) -> np.ndarray:
    """``(N, 5)`` float array from rotated boxes, box structures or ``(N, 8)`` quadrilaterals."""
    if boxes is None:
        return np.zeros((0, 5))
    if hasattr(boxes, 'tensor'):
        boxes = boxes.tensor
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().numpy()
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        return np.zeros((0, 5))
    if boxes.ndim != 2 or boxes.shape[1] not in (5, 8):
        raise ValueError(f'{where}: boxes must be (N, 5) rotated or (N, 8) quadrilaterals, '
                         f'got shape {boxes.shape}')
    return poly_to_rbox(boxes) if boxes.shape[1] == 8 else boxes


def _array(values: Any, dtype: Any) -> np.ndarray:
    if values is None:
        return np.zeros((0,), dtype=dtype)
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype).reshape(-1)


@METRICS.register_module()
class RotatedBoxTextMetric(BaseMetric):
    """mAP_nc and mean F1 of rotated detections without confidence scores (see module doc).

    Predictions come from the sample's ``pred_text`` (decoded with ``codec`` at the sample's
    ``ori_shape``) or from ``pred_instances`` (``bboxes`` (N, 5) or (N, 8), ``labels``, and
    ``scores`` used only with ``score_thrs``). Ground truth is ``gt_instances`` and, for
    difficult objects, ``ignored_instances`` (as mmdet's ``PackDetInputs`` splits them).

    Reported keys: ``mAP_nc`` (and ``mAP_nc@<thr>`` per score threshold), ``mF1``,
    ``precision``, ``recall``, ``mF1_lmmrotate``, ``mP_lmmrotate``, ``mR_lmmrotate`` and, with
    text predictions, ``text_malformed`` / ``text_unknown_labels`` (counts over the set).

    Args:
        iou_thr: IoU a match needs (>=, as mmrotate and LMMRotate). Defaults to 0.5.
        ap_mode: ``'11points'`` (VOC07, mmrotate's default) or ``'area'``.
        score_thrs: With scored predictions: keep scores > thr, score the rest 1, report the
            best mAP_nc over the thresholds. None ignores scores.
        codec: Keyword arguments of :class:`RotatedBoxTextCodec` (a ``preset`` key selects
            :meth:`RotatedBoxTextCodec.from_preset`); ``classes`` defaults to the dataset's.
        lmmrotate_classes: Class count of ``mF1_lmmrotate``: ``'gt'`` (largest label + 1, as
            LMMRotate) or ``'dataset'``.
        collect_device: Device used to gather results across processes.
        prefix: Prefix of the keys; defaults to ``'rbox_text'``.
    """

    default_prefix = 'rbox_text'

    def __init__(self, iou_thr: float = 0.5, ap_mode: str = '11points',
                 score_thrs: Sequence[float] | None = None, codec: Mapping | None = None,
                 lmmrotate_classes: str = 'gt', collect_device: str = 'cpu',
                 prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if ap_mode not in ('11points', 'area'):
            raise ValueError(f"ap_mode must be '11points' or 'area', got {ap_mode!r}")
        if lmmrotate_classes not in ('gt', 'dataset'):
            raise ValueError(f"lmmrotate_classes must be 'gt' or 'dataset', got "
                             f"{lmmrotate_classes!r}")
        self.iou_thr, self.ap_mode = iou_thr, ap_mode
        self.lmmrotate_classes = lmmrotate_classes
        self.score_thrs = list(score_thrs) if score_thrs is not None else None
        self.codec_cfg = dict(codec) if codec is not None else None
        self._codec: RotatedBoxTextCodec | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        meta = self.dataset_meta or {}
        classes = meta.get('classes') or (self.codec_cfg or {}).get('classes')
        if not classes:
            raise ValueError('RotatedBoxTextMetric needs class names: set dataset_meta '
                             "['classes'] (the evaluator does) or codec=dict(classes=...)")
        return tuple(classes)

    @property
    def codec(self) -> RotatedBoxTextCodec:
        if self._codec is None:
            cfg = dict(self.codec_cfg or {})
            preset = cfg.pop('preset', None)
            classes = cfg.pop('classes', None) or self.classes
            self._codec = (RotatedBoxTextCodec.from_preset(preset, classes, **cfg) if preset
                           else RotatedBoxTextCodec(classes, **cfg))
        return self._codec

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Store each sample's predictions and ground truth as small numpy arrays."""
        for idx, sample in enumerate(data_samples):
            where = f'sample {_field(sample, "img_path") or idx}'
            result: dict[str, Any] = {}
            text = _field(sample, 'pred_text')
            if text is not None:
                if self.codec_cfg is None:
                    raise ValueError(f'{where} has pred_text but the metric has no codec')
                shape = _field(sample, 'ori_shape') or _field(sample, 'img_shape')
                size = (shape[1], shape[0]) if shape is not None else None
                boxes, labels, report = self.codec.decode(text, image_size=size)
                result.update(det_boxes=boxes.numpy().astype(np.float64),
                              det_labels=labels.numpy(), det_scores=None,
                              malformed=len(report.malformed),
                              unknown=len(report.unknown_labels))
            else:
                pred = _field(sample, 'pred_instances')
                if pred is None:
                    raise ValueError(f'{where}: neither pred_text nor pred_instances')
                result.update(det_boxes=_rboxes(_field(pred, 'bboxes'), where),
                              det_labels=_array(_field(pred, 'labels'), np.int64))
                scores = _field(pred, 'scores')
                result['det_scores'] = None if scores is None else _array(scores, np.float64)
            for key, name in (('gt', 'gt_instances'), ('ignored', 'ignored_instances')):
                inst = _field(sample, name)
                result[f'{key}_boxes'] = _rboxes(_field(inst, 'bboxes') if inst is not None
                                                 else None, where)
                result[f'{key}_labels'] = _array(_field(inst, 'labels') if inst is not None
                                                 else None, np.int64)
            self.results.append(result)

    def compute_metrics(self, results: list) -> dict[str, float]:
        num_classes = len(self.classes)
        metrics: dict[str, float] = {}
        if self.score_thrs:
            best = 0.0
            for thr in self.score_thrs:
                kept = [self._keep_above(r, thr) for r in results]
                value, _, _ = map_no_confidence(kept, num_classes, self.iou_thr, self.ap_mode)
                metrics[f'mAP_nc@{thr:g}'] = value
                best = max(best, value)
            metrics['mAP_nc'] = best
        else:
            metrics['mAP_nc'], _, _ = map_no_confidence(results, num_classes, self.iou_thr,
                                                          self.ap_mode)
        f1 = f1_greedy(results, num_classes, self.iou_thr)
        metrics.update(mF1=f1['mF1'], precision=f1['precision'], recall=f1['recall'])
        n_lmm = num_classes
        if self.lmmrotate_classes == 'gt':
            n_lmm = 1 + max([-1] + [int(r[k].max()) for r in results
                                    for k in ('gt_labels', 'det_labels') if len(r[k])])
        mean_p, mean_r, f1_l = f1_lmmrotate(results, max(n_lmm, 1), self.iou_thr)
        metrics.update(mF1_lmmrotate=f1_l, mP_lmmrotate=mean_p, mR_lmmrotate=mean_r)
        if any('malformed' in r for r in results):
            metrics['text_malformed'] = float(sum(r.get('malformed', 0) for r in results))
            metrics['text_unknown_labels'] = float(sum(r.get('unknown', 0) for r in results))
        MMLogger.get_current_instance().info(
            'rotated box text: ' + ', '.join(f'{k}={v:.4f}' for k, v in metrics.items()))
        return metrics

    @staticmethod
    def _keep_above(result: ImageResult, thr: float) -> ImageResult:
        scores = result.get('det_scores')
        if scores is None:
            return result
        keep = scores > thr
        return {**result, 'det_boxes': result['det_boxes'][keep],
                'det_labels': result['det_labels'][keep]}
