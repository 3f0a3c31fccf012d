"""Class-wise rotated NMS that is correct on the CPU.

mmcv's CPU ``nms_rotated`` kernel drops the ``labels`` argument (only the CUDA kernel reads
it), so ``nms_rotated(dets, scores, thr, labels)`` suppresses across classes there. mmcv's
``batched_nms`` shifts rotated boxes by ``label * (max(x, y) + max(w, h) + 1)``, which does not
separate classes when the boxes are large next to their smallest coordinate (a 45-degree box
reaches ``0.71 * w`` from its centre), so near the image origin it suppresses across classes
too. Here every class is shifted along x by more than the whole x-extent of all the rotated
boxes (computed from their corners), in float64, so different classes never overlap and the
result equals running NMS class by class.
"""
import torch
from mmcv.ops import nms_rotated as _mmcv_nms_rotated
from torch import Tensor


def _class_offsets(boxes: Tensor, labels: Tensor) -> Tensor:
    """Boxes (float64) shifted along x so that classes occupy disjoint x-ranges."""
    b = boxes.double()
    # the farthest a corner lies from its centre is half the diagonal
    radius = 0.5 * torch.sqrt(b[:, 2] ** 2 + b[:, 3] ** 2)
    lo = (b[:, 0] - radius).min()
    hi = (b[:, 0] + radius).max()
    step = (hi - lo) + 1.0
    shifted = b.clone()
    shifted[:, 0] = b[:, 0] - lo + labels.to(b.dtype) * step
    shifted[:, 1] = b[:, 1] - b[:, 1].min()
    return shifted


def batched_nms_rotated(boxes: Tensor, scores: Tensor, labels: Tensor,
                        iou_thr: float) -> tuple[Tensor, Tensor]:
    """Rotated NMS applied independently within each label.

    Args:
        boxes: ``(N, 5)`` ``(cx, cy, w, h, angle_radian)``.
        scores: ``(N,)``.
        labels: ``(N,)`` integer class of each box.
        iou_thr: boxes whose IoU with a higher-scoring box of the same label reaches this are
            dropped (mmcv's CPU kernel compares with ``>=``).

    Returns:
        ``(dets (K, 6), keep (K,))``: kept boxes with their score appended, and their indices
        into the input, by decreasing score.
    """
    if boxes.dim() != 2 or boxes.shape[1] != 5:
        raise ValueError(f'batched_nms_rotated takes (N, 5) boxes, got {tuple(boxes.shape)}')
    if not (scores.shape == labels.shape == boxes.shape[:1]):
        raise ValueError('boxes, scores and labels disagree on N: '
                         f'{tuple(boxes.shape)}, {tuple(scores.shape)}, {tuple(labels.shape)}')
    if boxes.shape[0] == 0:
        return boxes.new_zeros((0, 6)), torch.zeros(0, dtype=torch.long, device=boxes.device)
    shifted = _class_offsets(boxes, labels)
    _, keep = _mmcv_nms_rotated(shifted, scores.double(), float(iou_thr))
    keep = keep[scores[keep].argsort(descending=True, stable=True)]
    return torch.cat([boxes[keep], scores[keep, None].to(boxes.dtype)], dim=1), keep

