"""Evaluation metrics registered in ``mmrs.registry.METRICS``.

- :class:`ChangeMetric`: binary change detection (precision, recall, F1, IoU, OA, kappa).
- :class:`SCDMetric`: semantic change detection (SeK, mIoU, Fscd, Score) under the SECOND,
  open-cd and MambaCD conventions, side by side.
- :class:`XView2Metric`: building damage assessment on xBD: localisation F1, per-grade damage
  F1, their harmonic mean and the xView2 score (0.3 loc + 0.7 damage) as the official
  ``xview2_metrics.py`` computes them (damage scored on the damage target's buildings, the
  damage prediction zeroed where no building is predicted), and MambaCD's variant under
  ``mambacd/`` (scored on the localisation target's buildings, no zeroing, 1e-7 epsilons).
- :class:`DOTADevkitMetric`: oriented detection, DOTA Task1 AP equal to the official devkit
  (``mode='devkit'``) or to mmrotate's ``eval_rbbox_map`` (``mode='mmrotate'``).
- :class:`RotatedBoxTextMetric`: detections parsed from text (LMMRotate): mAP_nc and mF1.
"""
from .change_metric import ChangeMetric
from .dota_metric import DOTADevkitMetric
from .rbox_text_metric import RotatedBoxTextMetric
from .retrieval_metric import RetrievalMetric
from .scd_metric import SCD_CONVENTIONS, SCDMetric
from .xview2_metric import XVIEW2_CONVENTIONS, XView2Metric
from .zero_shot_metric import ZeroShotAccuracy

__all__ = [
    'ChangeMetric', 'DOTADevkitMetric', 'RotatedBoxTextMetric', 'SCDMetric', 'SCD_CONVENTIONS',
    'XView2Metric', 'XVIEW2_CONVENTIONS', 'RetrievalMetric', 'ZeroShotAccuracy'
]
