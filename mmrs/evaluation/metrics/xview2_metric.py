"""xView2 building damage scores: the official scorer's F1s and MambaCD's variant, side by side.

Official (``DIUx-xView/xView2_scoring``, ``xview2_metrics.py``), pixel-wise and summed over
all tiles before any ratio:

- localisation: TP / FN / FP of "building" between the localisation prediction (``> 0``)
  and the localisation target (the pre-disaster raster);
- damage: the damage prediction is zeroed where no building is *predicted*
  (``dp * (lp > 0)``), and only pixels that are buildings in the **damage target** (the
  post-disaster raster, values 1..4) are scored; per grade ``c`` in 1..4 TP / FN / FP of
  ``== c``. A predicted 0 on a target building is a false negative of its grade;
- F1 = 0 when TP = 0 (else 2PR / (P + R)); ``damage_f1`` = the harmonic mean
  ``4 / sum(1 / (f1_c + 1e-6))``; ``score = 0.3 * localization_f1 + 0.7 * damage_f1``.

MambaCD (``train_MambaBDA.py`` / ``infer_MambaBDA.py``, ``utils_func/metrics.Evaluator``)
differs in three ways, reported under ``mambacd/``:

======================  ===================================  ===============================
aspect                  official                             ``mambacd/``
======================  ===================================  ===============================
damage pixels scored    damage target in 1..4                localisation target == 1, damage
                                                             target in 0..4 (a 0 there is a
                                                             false positive of the predicted
                                                             grade)
damage prediction       zeroed where no building predicted   used as is
per-grade F1            0 if TP = 0, else 2PR / (P + R)      P, R, F1 with +1e-7 denominators
harmonic mean           ``4 / sum(1 / (f1 + 1e-6))``         ``4 / sum(1 / f1)`` (0 if any is 0)
======================  ===================================  ===============================

The localisation F1 is the same in both (MambaCD's is NaN without buildings; 0 here). Both are
micro-averaged over the evaluation set, as the scorer and MambaCD's confusion matrices are.
Ground truth 255 (ignore) is left out everywhere (the release has none; padding has).
"""
from collections.abc import Sequence
from typing import Any

import numpy as np
from mmengine.evaluator import BaseMetric

from mmrs.registry import METRICS

from ..functional import IGNORE_INDEX, ArrayLike, confusion_matrix, safe_divide
from .change_metric import (describe_sample, get_label_map, gt_on_prediction_grid,
                            scale_metrics)

#: The conventions :class:`XView2Metric` reports, in order.
XVIEW2_CONVENTIONS = ('xview2', 'mambacd')
#: Damage grades 1..4, as the scorer names them in its JSON output.
DAMAGE_GRADES = ('no_damage', 'minor_damage', 'major_damage', 'destroyed')
#: Number of damage classes: background + the four grades.
NUM_DAMAGE = 5
#: The official harmonic mean's epsilon.
HARMONIC_EPS = 1e-6
#: MambaCD's ``Damage_F1_socore`` epsilon.
MAMBACD_EPS = 1e-7


def official_f1(tp: float, fn: float, fp: float) -> dict[str, float]:
    """Precision, recall and F1 as the scorer's ``F1Recorder``: all 0 when ``tp == 0``."""
    if tp == 0:
        return dict(precision=0.0, recall=0.0, f1=0.0)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return dict(precision=precision, recall=recall,
                f1=2 * precision * recall / (precision + recall))


def harmonic_mean(values: Sequence[float], eps: float = HARMONIC_EPS) -> float:
    """``len / sum(1 / (v + eps))``; with ``eps=0`` it is 0 as soon as one value is 0."""
    if eps == 0 and any(v == 0 for v in values):
        return 0.0
    return len(values) / sum(1.0 / (v + eps) for v in values)


def damage_counts(cm: np.ndarray) -> np.ndarray:
    """``(4, 3)`` TP, FN, FP of grades 1..4 from a 5x5 damage matrix (rows = ground truth)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)[1:]
    return np.stack([tp, cm.sum(axis=1)[1:] - tp, cm.sum(axis=0)[1:] - tp], axis=1)


def xview2_matrices(loc_pred: ArrayLike, loc_gt: ArrayLike, dmg_pred: ArrayLike,
                    dmg_gt: ArrayLike, ignore_index: int = IGNORE_INDEX,
                    where: str = 'sample') -> dict[str, np.ndarray]:
    """Confusion matrices of one tile under both conventions.

    Args:
        loc_pred: Localisation prediction, 0 / 1, ``(H, W)`` or ``(1, H, W)``.
        loc_gt: Localisation target, 0 / 1 / ``ignore_index``.
        dmg_pred: Damage prediction, 0..4.
        dmg_gt: Damage target, 0..4 / ``ignore_index``.
        ignore_index: Ground-truth value left out.
        where: Names the tile in error messages.

    Returns:
        ``loc`` (2x2), ``damage`` (5x5, official pixel selection; row 0 is empty) and
        ``damage_mambacd`` (5x5, MambaCD's selection), rows = ground truth.

    Raises:
        ValueError: Shape mismatch, or values outside the ranges above at scored pixels.
    """
    def cm(pred: ArrayLike, gt: ArrayLike, n: int, pname: str, gname: str) -> np.ndarray:
        return confusion_matrix(pred, gt, n, ignore_index, pred_name=f'{pname} ({where})',
                                target_name=f'{gname} ({where})')

    loc = cm(loc_pred, loc_gt, 2, 'pred_sem_seg', 'gt_sem_seg')
    if tuple(dmg_pred.shape[-2:]) != tuple(loc_pred.shape[-2:]):
        raise ValueError(f'pred_damage_seg ({where}) is {tuple(dmg_pred.shape)} but '
                         f'pred_sem_seg is {tuple(loc_pred.shape)}')
    official_gt = dmg_gt * 1  # a copy (numpy or torch) that keeps the device
    official_gt[dmg_gt == 0] = ignore_index  # scored: buildings of the damage target
    damage = cm(dmg_pred * (loc_pred > 0), official_gt, NUM_DAMAGE, 'pred_damage_seg',
                'gt_damage_seg')
    mambacd_gt = dmg_gt * 1
    mambacd_gt[loc_gt != 1] = ignore_index  # scored: buildings of the localisation target
    damage_mambacd = cm(dmg_pred, mambacd_gt, NUM_DAMAGE, 'pred_damage_seg',
                        'gt_damage_seg')
    return dict(loc=loc, damage=damage, damage_mambacd=damage_mambacd)


def xview2_scores(loc_cm: np.ndarray, damage_cm: np.ndarray) -> dict[str, float]:
    """The official scores (keys of the scorer's JSON, plus precision / recall)."""
    (_, fp), (fn, tp) = np.asarray(loc_cm, dtype=np.float64)
    loc = official_f1(tp, fn, fp)
    grades = [official_f1(*row) for row in damage_counts(damage_cm)]
    damage_f1 = harmonic_mean([g['f1'] for g in grades])
    scores = dict(score=0.3 * loc['f1'] + 0.7 * damage_f1, damage_f1=damage_f1,
                  localization_f1=loc['f1'], localization_precision=loc['precision'],
                  localization_recall=loc['recall'])
    for name, grade in zip(DAMAGE_GRADES, grades):
        scores.update({f'damage_f1_{name}': grade['f1'],
                       f'damage_precision_{name}': grade['precision'],
                       f'damage_recall_{name}': grade['recall']})
    return scores


def mambacd_scores(loc_cm: np.ndarray, damage_cm: np.ndarray) -> dict[str, float]:
    """MambaCD's ``lofF1``, ``clfF1`` (harmonic mean), ``oaF1`` and per-grade F1s."""
    (_, fp), (fn, tp) = np.asarray(loc_cm, dtype=np.float64)
    precision, recall = safe_divide(tp, tp + fp), safe_divide(tp, tp + fn)
    loc_f1 = safe_divide(2 * recall * precision, recall + precision)
    f1s = []
    for tp_c, fn_c, fp_c in damage_counts(damage_cm):
        p, r = tp_c / (tp_c + fp_c + MAMBACD_EPS), tp_c / (tp_c + fn_c + MAMBACD_EPS)
        f1s.append(2 * p * r / (p + r + MAMBACD_EPS))
    damage_f1 = harmonic_mean(f1s, eps=0.0)
    scores = dict(loc_f1=loc_f1, damage_f1=damage_f1, oa_f1=0.3 * loc_f1 + 0.7 * damage_f1)
    scores.update({f'damage_f1_{name}': f1 for name, f1 in zip(DAMAGE_GRADES, f1s)})
    return scores


@METRICS.register_module()
class XView2Metric(BaseMetric):
    """xView2 localisation / damage F1s and score (official scorer and MambaCD conventions).

    ``process`` reads ``pred_sem_seg`` (localisation 0 / 1), ``pred_damage_seg`` (0..4),
    ``gt_sem_seg`` (0 / 1 / 255) and ``gt_damage_seg`` (0..4 / 255; un-classified buildings
    must already be 255, as :class:`~mmrs.datasets.XBDDataset` does by default) and stores
    three small confusion matrices per tile; ground truth is compared at the predictions'
    original size (see :class:`~mmrs.evaluation.metrics.ChangeMetric`). Values outside those
    ranges at scored pixels raise ``ValueError`` naming the map and the tile.

    Keys (see the module docstring for the rules): the scorer's ``score``, ``damage_f1``,
    ``localization_f1``, ``damage_f1_{no_damage,minor_damage,major_damage,destroyed}`` plus
    ``localization_{precision,recall}`` and ``damage_{precision,recall}_<grade>``; with
    ``'mambacd'`` in ``conventions`` also ``mambacd/{loc_f1,damage_f1,oa_f1}`` and
    ``mambacd/damage_f1_<grade>``.

    Args:
        conventions: ``'xview2'`` (always reported) and/or ``'mambacd'``.
        ignore_index: Ground-truth value excluded. Defaults to 255.
        percent: Report values x 100. Defaults to False (fractions, as the scorer).
        collect_device: Device used to gather results across processes.
        prefix: Prefix added to every key.
        collect_dir: Directory for cross-process collection when ``collect_device='cpu'``.
    """

    def __init__(self,
                 conventions: Sequence[str] | str = XVIEW2_CONVENTIONS,
                 ignore_index: int = IGNORE_INDEX,
                 percent: bool = False,
                 collect_device: str = 'cpu',
                 prefix: str | None = None,
                 collect_dir: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        conventions = (conventions, ) if isinstance(conventions, str) else tuple(conventions)
        unknown = [c for c in conventions if c not in XVIEW2_CONVENTIONS]
        if unknown:
            raise ValueError(f'unknown xView2 conventions {unknown}; choose from '
                             f'{XVIEW2_CONVENTIONS}')
        self.conventions = conventions
        self.ignore_index = ignore_index
        self.percent = percent

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Store the confusion matrices of every tile of the batch.

        Args:
            data_batch: The batch from the dataloader (unused).
            data_samples: Model outputs as dicts (``ChangeDataSample.to_dict()``) or
                ``ChangeDataSample`` objects with the four maps.
        """
        for sample in data_samples:
            loc_pred = get_label_map(sample, 'pred_sem_seg')
            dmg_pred = get_label_map(sample, 'pred_damage_seg')
            self.results.append(xview2_matrices(
                loc_pred, gt_on_prediction_grid(sample, 'gt_sem_seg', loc_pred), dmg_pred,
                gt_on_prediction_grid(sample, 'gt_damage_seg', loc_pred), self.ignore_index,
                where=describe_sample(sample)))

    def compute_metrics(self, results: list[dict[str, np.ndarray]]) -> dict[str, float]:
        """Sum the matrices over all tiles and derive the scores."""
        totals = dict(loc=np.zeros((2, 2), np.int64),
                      damage=np.zeros((NUM_DAMAGE, NUM_DAMAGE), np.int64),
                      damage_mambacd=np.zeros((NUM_DAMAGE, NUM_DAMAGE), np.int64))
        for sample in results:
            for key, value in sample.items():
                totals[key] += np.asarray(value, dtype=np.int64)
        metrics = xview2_scores(totals['loc'], totals['damage'])
        if 'mambacd' in self.conventions:
            mambacd = mambacd_scores(totals['loc'], totals['damage_mambacd'])
            metrics.update({f'mambacd/{k}': v for k, v in mambacd.items()})
        return scale_metrics(metrics, self.percent)
