"""Task utilities (box-overlap calculators) registered in :data:`mmrs.registry.TASK_UTILS`.

Configs reach them as ``iou_calculator=dict(type='SparseRBboxOverlaps2D')`` under
``default_scope='mmrs'`` (or ``type='mmrs.SparseRBboxOverlaps2D'`` from another scope).
"""
from .rotated_iou_calculator import (SparseRBboxOverlaps2D, candidate_pairs, enclosing_hboxes,
                                     sparse_rbbox_overlaps)

__all__ = ['SparseRBboxOverlaps2D', 'candidate_pairs', 'enclosing_hboxes',
           'sparse_rbbox_overlaps']
