"""Evaluation: change-detection metrics and the pure functions behind them.

:mod:`mmrs.evaluation.functional` holds the arithmetic (confusion matrices with an ignore
value, binary scores, kappa, SeK, Fscd, from-to encoding) without any mmengine dependency;
:mod:`mmrs.evaluation.metrics` wraps it in mmengine metrics for the runner, and
``tools/analysis/eval_change.py`` uses it on folders of saved masks.
"""
from .metrics import SCD_CONVENTIONS, ChangeMetric, DOTADevkitMetric, SCDMetric, XView2Metric

__all__ = ['ChangeMetric', 'DOTADevkitMetric', 'SCDMetric', 'SCD_CONVENTIONS', 'XView2Metric']
