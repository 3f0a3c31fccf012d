"""Route mmcv's CUDA-only rotated ops to :mod:`mmrs.models.ops.rotated_cpu` for CPU tensors.

mmrotate modules bind these ops by name at import (``from mmcv.ops import convex_iou``), so
patching ``mmcv.ops`` alone misses modules imported earlier. :func:`enable_cpu_rotated_ops`
therefore replaces the function objects in ``mmcv.ops`` and in every loaded ``mmcv``/``mmdet``/
``mmrotate`` module that holds them; modules imported later pick the wrappers up from
``mmcv.ops``. A wrapper calls the CPU version only when its first tensor argument is on the
CPU; CUDA (and other device) tensors still reach the original kernel.

Rotated NMS is made class-aware on the CPU in the same way: ``nms_rotated(..., labels=...)``
and ``batched_nms`` with ``type='nms_rotated'`` (the path of mmdet's ``multiclass_nms`` used by
the rotated detectors' ``test_cfg``) go through :func:`mmrs.models.ops.nms.batched_nms_rotated`'s
class offsets.
"""
import functools
import sys
from collections.abc import Callable
from typing import Any

import mmcv.ops
import mmcv.ops.nms  # noqa: F401 (binds the nms module whose globals batched_nms reads)
import torch
from torch import Tensor

from . import rotated_cpu
from .nms import _class_offsets, batched_nms_rotated

_MODULE_PREFIXES = ('mmcv', 'mmdet', 'mmrotate')
_MARK = '_mmrs_cpu_fallback'


def _on_cpu(args: tuple, kwargs: dict) -> bool:
    for value in (*args, *kwargs.values()):
        if isinstance(value, Tensor):
            return value.device.type == 'cpu'
    return False


def _with_cpu_path(original: Callable, cpu_fn: Callable) -> Callable:
    """``original`` for device tensors, ``cpu_fn`` for CPU tensors."""

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _on_cpu(args, kwargs):
            return cpu_fn(*args, **kwargs)
        return original(*args, **kwargs)

    setattr(wrapper, _MARK, True)
    return wrapper


def _nms_rotated_labels(original: Callable) -> Callable:
    """mmcv ``nms_rotated`` whose ``labels`` argument is honoured on the CPU."""

    @functools.wraps(original)
    def nms_rotated(dets: Tensor, scores: Tensor, iou_threshold: float,
                    labels: Tensor | None = None, clockwise: bool = True):
        if labels is None or dets.device.type != 'cpu' or dets.shape[0] == 0:
            return original(dets, scores, iou_threshold, labels=labels, clockwise=clockwise)
        # ``clockwise`` only mirrors every angle, which leaves every IoU unchanged
        return batched_nms_rotated(dets, scores, labels, iou_threshold)

    setattr(nms_rotated, _MARK, True)
    return nms_rotated


def _is_rotated_nms(nms_op: Any) -> bool:
    if isinstance(nms_op, str):
        return nms_op == 'nms_rotated'
    return getattr(nms_op, '__name__', '') == 'nms_rotated'


def _batched_nms_classwise(original: Callable) -> Callable:
    """mmcv ``batched_nms`` whose rotated-box class offsets separate classes on the CPU."""

    @functools.wraps(original)
    def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, nms_cfg: dict | None,
                    class_agnostic: bool = False):
        if nms_cfg is None or boxes.device.type != 'cpu' or boxes.shape[0] == 0 \
                or boxes.size(-1) != 5:
            return original(boxes, scores, idxs, nms_cfg, class_agnostic)
        cfg = dict(nms_cfg)
        agnostic = cfg.pop('class_agnostic', class_agnostic)
        if agnostic or not _is_rotated_nms(cfg.get('type', 'nms')):
            return original(boxes, scores, idxs, nms_cfg, class_agnostic)
        # shift classes apart ourselves (float64), then let mmcv run class-agnostic
        shifted = _class_offsets(boxes, idxs)
        dets, keep = original(shifted, scores.double(), idxs, cfg, True)
        return _cat_dets(boxes, dets, keep), keep

    setattr(batched_nms, _MARK, True)
    return batched_nms


def _cat_dets(boxes: Tensor, dets: Tensor, keep: Tensor) -> Tensor:
    return torch.cat([boxes[keep], dets[:, -1:].to(boxes.dtype)], dim=1)


def _replace_everywhere(name: str, original: Callable, wrapper: Callable) -> list[str]:
    """Put ``wrapper`` wherever a loaded mmcv/mmdet/mmrotate module binds ``original``."""
    patched = []
    for mod_name, module in list(sys.modules.items()):
        if module is None or not mod_name.startswith(_MODULE_PREFIXES):
            continue
        if getattr(module, name, None) is original:
            setattr(module, name, wrapper)
            patched.append(mod_name)
    return patched


def enable_cpu_rotated_ops() -> dict[str, list[str]]:
    """Install the CPU fallbacks (idempotent).

    Returns:
        For each op, the modules whose binding was replaced by this call (empty when
        already enabled).
    """
    wrappers: dict[str, Callable[[Callable], Callable]] = {
        name: functools.partial(_with_cpu_path, cpu_fn=getattr(rotated_cpu, name))
        for name in ('convex_iou', 'convex_giou', 'min_area_polygons', 'points_in_polygons',
                     'diff_iou_rotated_2d')
    }
    wrappers['nms_rotated'] = _nms_rotated_labels
    wrappers['batched_nms'] = _batched_nms_classwise
    report = {}
    for name, make in wrappers.items():
        original = getattr(mmcv.ops, name)
        if getattr(original, _MARK, False):
            report[name] = []
            continue
        report[name] = _replace_everywhere(name, original, make(original))
    return report


def cpu_rotated_ops_enabled() -> bool:
    """Whether :func:`enable_cpu_rotated_ops` has patched ``mmcv.ops``."""
    return all(getattr(getattr(mmcv.ops, n), _MARK, False)
               for n in ('convex_iou', 'nms_rotated', 'batched_nms'))


__all__ = ['enable_cpu_rotated_ops', 'cpu_rotated_ops_enabled']
