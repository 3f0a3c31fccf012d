"""Evaluation metrics registered in ``mmrs.registry.METRICS``.

- :class:`ChangeMetric`: binary change detection (precision, recall, F1, IoU, OA, kappa).
- :class:`SCDMetric`: semantic change detection (SeK, mIoU, Fscd, Score) under the SECOND,
  open-cd and MambaCD conventions, side by side.
"""
from .change_metric import ChangeMetric
from .scd_metric import SCD_CONVENTIONS, SCDMetric

__all__ = ['ChangeMetric', 'SCDMetric', 'SCD_CONVENTIONS']
