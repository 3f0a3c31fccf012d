"""Rotated-box IoU for anchor assignment that skips the pairs that cannot overlap.

mmdet's ``MaxIoUAssigner`` with mmrotate's ``RBboxOverlaps2D`` evaluates mmcv's
``box_iou_rotated`` for every anchor x ground-truth pair. On the CPU that kernel is a serial
loop of a few microseconds a pair, so a 512x512 image with ~50k-100k anchors and ~50-120
objects spends seconds per iteration in assignment, although almost every anchor is far from
almost every object.

:class:`SparseRBboxOverlaps2D` gives the same matrix with much less work: it bounds each
(clamped) rotated box by its horizontal enclosing box, keeps only the pairs whose enclosing
boxes intersect (vectorised, a chunk of rows at a time so the candidate mask stays small) and
runs ``box_iou_rotated(..., aligned=True)`` on those pairs. Every other entry is exactly 0:
a rotated box lies inside its enclosing box, so disjoint enclosing boxes mean disjoint
rotated boxes. The enclosing boxes are widened by a small margin so that float rounding never
drops a touching pair, and a box with a non-finite coordinate is paired with every box, so
the kernel (not this filter) decides those entries. The kernel computes each pair on its
own, so the kept entries are the very values ``RBboxOverlaps2D`` returns.

One known difference: for boxes millions of pixels apart (centres near mmrotate's +-1e7 clamp)
mmcv's float32 kernel loses all precision after its centre shift and can return values above 1
for disjoint boxes; such pairs have disjoint enclosing boxes and are 0 here.

Aligned mode, empty inputs and non-CPU tensors go straight to mmrotate's ``rbbox_overlaps``.
"""
from collections.abc import Iterator

import torch
from mmcv.ops import box_iou_rotated
from mmdet.structures.bbox import get_box_tensor
from mmrotate.structures.bbox import rbbox_overlaps
from torch import Tensor

from mmrs.registry import TASK_UTILS

#: Relative widening of the enclosing boxes (of the larger of a box's half extents).
_REL_MARGIN = 1e-4
#: Absolute widening (pixels) on top of the relative one.
_ABS_MARGIN = 1e-3


def _clamped(boxes: Tensor) -> Tensor:
    """The boxes as ``rbbox_overlaps`` hands them to the kernel (size >= 1e-3, |centre| <= 1e7)."""
    boxes = boxes.detach().clone()
    boxes[:, 2:4].clamp_(min=1e-3)
    boxes[:, :2].clamp_(min=-1e7, max=1e7)
    return boxes


def enclosing_hboxes(boxes: Tensor) -> Tensor:
    """Horizontal boxes ``(x1, y1, x2, y2)`` that contain the rotated ``(cx, cy, w, h, t)`` boxes.

    Widened by a small margin; a row with a non-finite value becomes ``(-inf, -inf, inf, inf)``
    so it is a candidate partner of every box.
    """
    work = boxes.double()
    cos, sin = torch.cos(work[:, 4]).abs(), torch.sin(work[:, 4]).abs()
    half_w, half_h = work[:, 2] * 0.5, work[:, 3] * 0.5
    ext_x = half_w * cos + half_h * sin
    ext_y = half_w * sin + half_h * cos
    margin = torch.maximum(ext_x, ext_y) * _REL_MARGIN + _ABS_MARGIN
    ext_x, ext_y = ext_x + margin, ext_y + margin
    hbox = torch.stack([work[:, 0] - ext_x, work[:, 1] - ext_y,
                        work[:, 0] + ext_x, work[:, 1] + ext_y], dim=1)
    bad = ~torch.isfinite(hbox).all(dim=1)
    if bad.any():
        inf = torch.tensor([-float('inf'), -float('inf'), float('inf'), float('inf')],
                           dtype=hbox.dtype, device=hbox.device)
        hbox[bad] = inf
    return hbox


def _row_chunks(rows: int, cols: int, max_pairs: int) -> Iterator[tuple[int, int]]:
    step = max(1, max_pairs // max(cols, 1))
    for start in range(0, rows, step):
        yield start, min(rows, start + step)


def candidate_pairs(hboxes1: Tensor, hboxes2: Tensor,
                    max_pairs: int = 1 << 22) -> tuple[Tensor, Tensor]:
    """Row and column indices of the pairs whose horizontal boxes intersect (closed intervals).

    Args:
        hboxes1: ``(m, 4)`` ``x1, y1, x2, y2`` boxes.
        hboxes2: ``(n, 4)`` boxes.
        max_pairs: at most this many pairs are compared at once (bounds the mask's memory).

    Returns:
        ``(rows, cols)``: 1-D int64 tensors, row-major order.
    """
    found_r, found_c = [], []
    for start, stop in _row_chunks(hboxes1.shape[0], hboxes2.shape[0], max_pairs):
        a = hboxes1[start:stop, None, :]
        b = hboxes2[None, :, :]
        hit = (a[..., 0] <= b[..., 2]) & (b[..., 0] <= a[..., 2]) & \
            (a[..., 1] <= b[..., 3]) & (b[..., 1] <= a[..., 3])
        r, c = hit.nonzero(as_tuple=True)
        found_r.append(r + start)
        found_c.append(c)
    if not found_r:
        empty = torch.zeros(0, dtype=torch.long, device=hboxes1.device)
        return empty, empty
    return torch.cat(found_r), torch.cat(found_c)


def sparse_rbbox_overlaps(bboxes1: Tensor, bboxes2: Tensor, mode: str = 'iou',
                          is_aligned: bool = False, max_pairs: int = 1 << 22) -> Tensor:
    """:func:`mmrotate.structures.bbox.rbbox_overlaps`, evaluated only where boxes may overlap.

    Args:
        bboxes1: ``(m, 5)`` ``cx, cy, w, h, t`` boxes (radians), or empty.
        bboxes2: ``(n, 5)`` boxes, or empty.
        mode: ``'iou'`` or ``'iof'`` (intersection over the area of ``bboxes1``).
        is_aligned: overlaps of the pairs ``(i, i)`` only (then ``m == n``).
        max_pairs: candidate search chunk size (pairs compared at once).

    Returns:
        ``(m, n)`` overlaps, or ``(m,)`` if ``is_aligned`` (mmrotate's shapes, including its
        ``(0, 1)`` for aligned empty inputs).
    """
    if mode not in ('iou', 'iof'):
        raise ValueError(f"mode must be 'iou' or 'iof', got {mode!r}")
    if (is_aligned or bboxes1.dim() != 2 or bboxes2.dim() != 2
            or bboxes1.size(0) * bboxes2.size(0) == 0
            or bboxes1.size(-1) != 5 or bboxes2.size(-1) != 5
            or bboxes1.device.type != 'cpu' or bboxes2.device.type != 'cpu'):
        # mmrotate's own path: its shapes for empty inputs and its checks of bad ones
        return rbbox_overlaps(bboxes1, bboxes2, mode, is_aligned)
    boxes1, boxes2 = _clamped(bboxes1), _clamped(bboxes2)
    rows, cols = candidate_pairs(enclosing_hboxes(boxes1), enclosing_hboxes(boxes2), max_pairs)
    out = boxes1.new_zeros(boxes1.size(0), boxes2.size(0))
    if rows.numel():
        values = box_iou_rotated(boxes1[rows], boxes2[cols], mode, aligned=True)
        out[rows, cols] = values
    return out


@TASK_UTILS.register_module()
class SparseRBboxOverlaps2D:
    """Drop-in for mmrotate's ``RBboxOverlaps2D`` that computes only possibly-overlapping pairs.

    Same inputs, outputs and values (``'iou'``/``'iof'``, ``is_aligned``, ``RotatedBoxes`` or
    tensors with an optional score column); on the CPU, the pairs whose enclosing horizontal
    boxes are disjoint are set to 0 without calling the rotated-IoU kernel.

    Args:
        max_pairs: pairs compared at once in the candidate search (memory bound: about
            ``max_pairs`` bytes for the mask).
    """

    def __init__(self, max_pairs: int = 1 << 22) -> None:
        if max_pairs < 1:
            raise ValueError(f'max_pairs must be positive, got {max_pairs}')
        self.max_pairs = max_pairs

    def __call__(self, bboxes1, bboxes2, mode: str = 'iou', is_aligned: bool = False) -> Tensor:
        """Overlaps of ``(m, 5|6)`` and ``(n, 5|6)`` rotated boxes: ``(m, n)``, or ``(m,)``."""
        assert bboxes1.size(-1) in [0, 5, 6]
        assert bboxes2.size(-1) in [0, 5, 6]
        if bboxes1.size(-1) == 6:
            bboxes1 = bboxes1[..., :5]
        if bboxes2.size(-1) == 6:
            bboxes2 = bboxes2[..., :5]
        bboxes1 = get_box_tensor(bboxes1)
        bboxes2 = get_box_tensor(bboxes2)
        return sparse_rbbox_overlaps(bboxes1, bboxes2, mode, is_aligned, self.max_pairs)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(max_pairs={self.max_pairs})'


__all__ = ['SparseRBboxOverlaps2D', 'candidate_pairs', 'enclosing_hboxes',
           'sparse_rbbox_overlaps']
