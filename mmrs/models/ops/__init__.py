"""CPU paths for mmcv's CUDA-only rotated-box ops and class-wise rotated NMS.

Importing this package (``import mmrs.models`` does) calls :func:`enable_cpu_rotated_ops`:
mmcv ships ``convex_iou``, ``min_area_polygons``, ``points_in_polygons`` and the vertex sort of
``diff_iou_rotated_2d`` for CUDA only and ignores ``labels`` in its CPU ``nms_rotated``, so
without it the rotated detector configs cannot train or test on the CPU. The patch is one
idempotent wrapper per function and leaves CUDA tensors on the CUDA kernels.
"""
from .dispatch import cpu_rotated_ops_enabled, enable_cpu_rotated_ops
from .nms import batched_nms_rotated
from .rotated_cpu import (box2corners, convex_giou, convex_iou, diff_iou_rotated_2d,
                          min_area_polygons, points_in_polygons, sort_vertices)

enable_cpu_rotated_ops()

__all__ = ['batched_nms_rotated', 'box2corners', 'convex_giou', 'convex_iou',
           'cpu_rotated_ops_enabled', 'diff_iou_rotated_2d', 'enable_cpu_rotated_ops',
           'min_area_polygons', 'points_in_polygons', 'sort_vertices']
