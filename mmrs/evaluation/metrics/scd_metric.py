"""Semantic change detection (SCD) metric under the three conventions in use.

SCD papers and toolboxes score the same predictions differently, so numbers are only
comparable under the same convention. :class:`SCDMetric` computes them side by side from
confusion matrices (never from stored maps). Semantic maps use class 0 = "no change" and
land-cover classes 1..K (SECOND: K = 6, ``num_semantic_classes`` = K + 1 = 7).

==========  ==============================  ===========================  ==========================
aspect      ``second`` (default)            ``opencd``                   ``mambacd``
==========  ==============================  ===========================  ==========================
matrix      (K+1)x(K+1) of the semantic     same pixels, kept as mmseg   (K²+1)x(K²+1): a changed
            maps, date-1 and date-2 pixels  per-class areas              pixel A→B is class
            both counted                                                 (A−1)·K + B, unchanged 0
mIoU        (IoU_nc + IoU_c) / 2 of the     ``binary_mIoU`` (binary      as ``second``, on the
            matrix collapsed to change /    maps), ``semantic_mIoU``     from-to matrix
            no change                       (nanmean of K+1 IoUs)
SeK         kappa of the matrix with its    kappa0·exp(IoU_fg)/e from    as ``second``, on the
            (0, 0) entry set to 0, times    the areas minus the class-0  from-to matrix
            exp(IoU_c − 1)                  TP (= ``second`` SeK)
Fscd        2·Psc·Rsc / (Psc + Rsc), Psc =  not reported                 as ``second`` (a pixel is
            correct changed / predicted                                  correct only if both
            changed, Rsc = correct changed                               dates are)
            / GT changed, both dates
combined    Score = 0.3·mIoU + 0.7·SeK      SCD_Score = 0.3·binary_mIoU  ``Score`` (MambaCD does
                                            + 0.7·SeK                    not print one)
==========  ==============================  ===========================  ==========================

Sources: ``second`` — Yang et al., "Asymmetric Siamese Networks for Semantic Change Detection
in Aerial Images", IEEE TGRS 60, 2022 (SECOND data set; mIoU, SeK, Score), with Fscd from
Ding et al. (BiSRNet, IEEE TGRS 60, 2022; SCanNet, IEEE TGRS 62, 2024). ``opencd`` —
open-cd's ``SCDMetric(cal_sek=True)`` (likyoo/open-cd v1.1.0). ``mambacd`` — ChangeMamba
(Chen et al., IEEE TGRS 62, 2024), validation in ``train_MambaSCD.py`` since 2024-06-17.

Keys: ``binary/<k>`` for the :func:`~mmrs.evaluation.functional.binary_metrics` keys of the
binary maps; ``second/{OA, IoU_nc, IoU_c, mIoU, kappa_n0, SeK, Psc, Rsc, Fscd, Score}``;
``opencd/{binary_mIoU, semantic_mIoU, SeK, SCD_Score}``; ``mambacd/`` with the ``second/``
keys; and the plain ``mIoU``, ``SeK``, ``Fscd``, ``Score`` = the SECOND values, always
reported (mmrs pins the SECOND convention). ``OA`` is pixel accuracy of the matrix; MambaCD
prints a per-image mean accuracy instead, which is not reproduced.

Notes on fidelity: undefined ratios are 0 (never NaN; kappa is 0 when chance agreement is 1,
as in SCanNet/MambaCD ``cal_kappa``); open-cd's means skip classes absent from both maps
(mmseg ``nanmean``), reproduced in ``opencd/``. MambaCD's README numbers (2024-05) predate its
switch to the from-to matrix (2024-06-17), so they most likely come from its earlier 7-class
per-date evaluation, i.e. the ``second`` convention. In the from-to mapping a changed pixel
without a land-cover class (0) is an error here; MambaCD silently drops such pixels.
"""
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from mmrs.registry import METRICS

from ..functional import (IGNORE_INDEX, ArrayLike, binary_metrics, confusion_matrix,
                          from_to_labels, opencd_metrics, scd_metrics)
from .change_metric import (describe_sample, get_label_map, gt_on_prediction_grid,
                            scale_metrics)

#: The conventions :class:`SCDMetric` knows, in report order.
SCD_CONVENTIONS = ('second', 'opencd', 'mambacd')

#: Plain (unprefixed) keys, copied from the ``second`` results.
PLAIN_KEYS = ('mIoU', 'SeK', 'Fscd', 'Score')

_MAPS = ('pred_sem_seg', 'pred_sem_seg_from', 'pred_sem_seg_to', 'gt_sem_seg',
         'gt_sem_seg_from', 'gt_sem_seg_to')


def _flat(x: ArrayLike) -> ArrayLike:
    """1-D view of a label map (numpy or torch)."""
    return x.reshape(-1)


def _same_backend(maps: dict[str, ArrayLike]) -> dict[str, ArrayLike]:
    """Put all maps on the device of the first tensor (numpy maps stay numpy if all are)."""
    tensors = [m for m in maps.values() if isinstance(m, torch.Tensor)]
    if not tensors:
        return maps
    device = tensors[0].device
    return {key: torch.as_tensor(m).to(device) for key, m in maps.items()}


def _mask_unchanged(sem: ArrayLike, change: ArrayLike) -> ArrayLike:
    """Set semantic predictions to 0 ("no change") where the change map says unchanged."""
    return sem * (change != 0)


@METRICS.register_module()
class SCDMetric(BaseMetric):
    """Semantic change detection scores (SECOND, open-cd and MambaCD conventions).

    Per sample ``process`` reads the six ``(1, H, W)`` maps ``pred_sem_seg``,
    ``pred_sem_seg_from``, ``pred_sem_seg_to``, ``gt_sem_seg``, ``gt_sem_seg_from``,
    ``gt_sem_seg_to`` and stores three confusion matrices: 2x2 binary, (K+1)x(K+1) semantic
    (both dates added) and, for ``mambacd``, the (K²+1)x(K²+1) from-to matrix. Semantic
    predictions are set to 0 where ``pred_sem_seg`` is 0, as the SECOND/SCanNet/MambaCD
    evaluation code does, so a head that emits land-cover classes everywhere is scored
    the same as one that already follows the data contract.

    Ground-truth maps are compared at the predictions' original size, as in
    :class:`~mmrs.evaluation.metrics.ChangeMetric`.

    Ignored pixels: ``gt_sem_seg == ignore_index`` for the binary matrix, the date's own
    ``gt_sem_seg_from/to == ignore_index`` for the semantic matrix, any of the three for the
    from-to matrix. Prediction values outside the class range at evaluated pixels raise
    ``ValueError`` naming the map, the values and the sample. See the module docstring for
    the formulas and keys.

    Args:
        num_semantic_classes: K + 1 (land-cover classes plus "no change"; 7 for SECOND).
            ``None`` takes ``len(dataset_meta['semantic_classes'])``.
        conventions: Which prefixed blocks to report, any of ``'second'``, ``'opencd'``,
            ``'mambacd'``. The ``binary/`` keys and the plain SECOND keys are always
            reported.
        ignore_index: Ground-truth value excluded from evaluation. Defaults to 255.
        percent: Multiply every value by 100. Defaults to False (fractions).
        collect_device: Device used to gather results across processes.
        prefix: Prefix added to every key. Defaults to None.
        collect_dir: Directory for cross-process collection when ``collect_device='cpu'``.
    """

    def __init__(self,
                 num_semantic_classes: int | None = None,
                 conventions: Sequence[str] | str = SCD_CONVENTIONS,
                 ignore_index: int = IGNORE_INDEX,
                 percent: bool = False,
                 collect_device: str = 'cpu',
                 prefix: str | None = None,
                 collect_dir: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        conventions = (conventions, ) if isinstance(conventions, str) else tuple(conventions)
        unknown = [c for c in conventions if c not in SCD_CONVENTIONS]
        if unknown:
            raise ValueError(f'unknown SCD conventions {unknown}; choose from {SCD_CONVENTIONS}')
        if num_semantic_classes is not None and num_semantic_classes < 2:
            raise ValueError('num_semantic_classes counts "no change" plus at least one '
                             f'land-cover class, got {num_semantic_classes}')
        self.conventions = conventions
        self.ignore_index = ignore_index
        self.percent = percent
        self._num_semantic_classes = num_semantic_classes

    @property
    def num_semantic_classes(self) -> int:
        """K + 1, from the argument or from ``dataset_meta['semantic_classes']``."""
        if self._num_semantic_classes is not None:
            return self._num_semantic_classes
        classes = (self.dataset_meta or {}).get('semantic_classes')
        if not classes:
            raise ValueError('SCDMetric needs num_semantic_classes (K + 1, e.g. 7 for SECOND) '
                             "or a dataset_meta with 'semantic_classes'")
        return len(classes)

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Store the confusion matrices of every sample of the batch.

        Args:
            data_batch: The batch from the dataloader (unused).
            data_samples: Model outputs as dicts (``ChangeDataSample.to_dict()``) or
                ``ChangeDataSample`` objects carrying the six maps.
        """
        for data_sample in data_samples:
            self.results.append(self._sample_matrices(data_sample))

    def _sample_matrices(self, data_sample: Any) -> dict[str, np.ndarray]:
        """Binary, semantic and (optionally) from-to confusion matrices of one sample."""
        where = describe_sample(data_sample)
        maps = {key: get_label_map(data_sample, key) for key in _MAPS}
        pred = maps['pred_sem_seg']
        for key in _MAPS:
            if key.startswith('gt_'):
                maps[key] = gt_on_prediction_grid(data_sample, key, pred)
        shapes = {key: tuple(m.shape[-2:]) for key, m in maps.items()}
        if len(set(shapes.values())) != 1:
            raise ValueError(f'label maps of {where} differ in size: {shapes}')
        maps = _same_backend({key: _flat(m) for key, m in maps.items()})
        num_classes = self.num_semantic_classes

        def cm(pred_key: str, gt_key: str, n: int, pred: ArrayLike | None = None) -> np.ndarray:
            return confusion_matrix(
                maps[pred_key] if pred is None else pred,
                maps[gt_key],
                n,
                self.ignore_index,
                pred_name=f'{pred_key} ({where})',
                target_name=f'{gt_key} ({where})')

        pred_change = maps['pred_sem_seg']
        matrices = {
            'binary': cm('pred_sem_seg', 'gt_sem_seg', 2),
            'semantic': (
                cm('pred_sem_seg_from', 'gt_sem_seg_from', num_classes,
                   _mask_unchanged(maps['pred_sem_seg_from'], pred_change)) +
                cm('pred_sem_seg_to', 'gt_sem_seg_to', num_classes,
                   _mask_unchanged(maps['pred_sem_seg_to'], pred_change))),
        }
        if 'mambacd' in self.conventions:
            matrices['from_to'] = self._from_to_matrix(maps, num_classes - 1, where)
        return matrices

    def _from_to_matrix(self, maps: dict[str, ArrayLike], num_landcover: int,
                        where: str) -> np.ndarray:
        """(K²+1)x(K²+1) matrix of the from-to codes (MambaCD convention)."""
        gt_codes = from_to_labels(maps['gt_sem_seg'], maps['gt_sem_seg_from'],
                                  maps['gt_sem_seg_to'], num_landcover, self.ignore_index,
                                  name=f'ground truth ({where})')
        valid = gt_codes != self.ignore_index
        pred_codes = from_to_labels(maps['pred_sem_seg'][valid],
                                    maps['pred_sem_seg_from'][valid],
                                    maps['pred_sem_seg_to'][valid], num_landcover, None,
                                    name=f'prediction ({where})')
        return confusion_matrix(pred_codes, gt_codes[valid], num_landcover**2 + 1, None,
                                pred_name=f'from-to prediction ({where})',
                                target_name=f'from-to ground truth ({where})')

    def compute_metrics(self, results: list[dict[str, np.ndarray]]) -> dict[str, float]:
        """Sum the per-sample matrices and report every selected convention."""
        totals = self._sum_matrices(results)
        second = scd_metrics(totals['semantic'])
        metrics = {f'binary/{k}': v for k, v in binary_metrics(totals['binary']).items()}
        metrics.update({key: second[key] for key in PLAIN_KEYS})
        if 'second' in self.conventions:
            metrics.update({f'second/{k}': v for k, v in second.items()})
        if 'opencd' in self.conventions:
            opencd = opencd_metrics(totals['binary'], totals['semantic'])
            metrics.update({f'opencd/{k}': v for k, v in opencd.items()})
        if 'mambacd' in self.conventions:
            from_to = scd_metrics(totals['from_to'])
            metrics.update({f'mambacd/{k}': v for k, v in from_to.items()})
        return scale_metrics(metrics, self.percent)

    def _sum_matrices(self, results: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Element-wise sum of the per-sample matrices (zeros when there are none)."""
        num_classes = self.num_semantic_classes
        num_from_to = (num_classes - 1)**2 + 1
        totals = {
            'binary': np.zeros((2, 2), dtype=np.int64),
            'semantic': np.zeros((num_classes, num_classes), dtype=np.int64),
            'from_to': np.zeros((num_from_to, num_from_to), dtype=np.int64),
        }
        for sample in results:
            for key, value in sample.items():
                totals[key] += np.asarray(value, dtype=np.int64)
        return totals
