"""VMamba's four-direction cross-scan of a 2-D feature map and the merge back.

Liu et al., "VMamba: Visual State Space Model", NeurIPS 2024 (the SS2D block, its "cross-scan" and
"cross-merge"). A (H, W) map is unfolded into four sequences of length ``L = H * W``, scanned by the
selective scan as four channel groups, and folded back by summing the four outputs:

0. row-major (``x[h, w]`` at position ``h * W + w``);
1. column-major (``x[h, w]`` at ``w * H + h``, i.e. the row-major order of the transposed map);
2. direction 0 reversed; 3. direction 1 reversed.

This order and layout are those of ``CrossScan``/``CrossMerge`` in ChenHongruixuan/MambaCD's
``classification/models/vmamba.py`` (used by its ``forward_corev2``, i.e. forward type "v3noz":
channel-first ``(B, C, H, W)`` in, ``(B, 4, C, L)`` out; the merge takes ``(B, 4, C, H, W)``, a
view of the scanned outputs, and returns ``(B, C, L)``) and of ``cross_scan_fwd``/
``cross_merge_fwd`` with ``scans=0`` in MzeroMiko/VMamba's ``classification/models/csm_triton.py``,
whose channel-last variants (``in_channel_first``/``out_channel_first`` False: ``(B, H, W, C)`` in,
``(B, L, 4, C)`` out) are offered here with the same flags. Both maps are linear and each is the
other's adjoint, so plain indexing ops give autograd the right backward (the official code writes
the same pair by hand).
"""
import torch
from torch import Tensor

__all__ = ['cross_scan', 'cross_merge']


def cross_scan(x: Tensor, *, in_channel_first: bool = True,
               out_channel_first: bool = True) -> Tensor:
    """Unfold a feature map into VMamba's four scan sequences.

    Args:
        x: ``(B, C, H, W)``, or ``(B, H, W, C)`` with ``in_channel_first=False``.
        in_channel_first: Layout of ``x``.
        out_channel_first: Output ``(B, 4, C, H*W)`` if True, else ``(B, H*W, 4, C)``.

    Returns:
        The four sequences: row-major, column-major, and both reversed, in that order.
    """
    if x.dim() != 4:
        raise ValueError(f'cross_scan expects a 4-D feature map, got shape {tuple(x.shape)}')
    if not in_channel_first:
        x = x.permute(0, 3, 1, 2)
    b, c, h, w = x.shape
    rows = x.reshape(b, c, h * w)
    cols = x.transpose(2, 3).reshape(b, c, h * w)
    y = torch.stack([rows, cols, rows.flip(-1), cols.flip(-1)], dim=1)
    return y if out_channel_first else y.permute(0, 3, 1, 2).contiguous()


def cross_merge(y: Tensor, *, in_channel_first: bool = True,
                out_channel_first: bool = True) -> Tensor:
    """Fold VMamba's four scan outputs back onto the map and sum them.

    Args:
        y: The scanned sequences viewed as ``(B, 4, C, H, W)`` (``out_channel_first=True``, the
            official call), or ``(B, H, W, 4, C)``. ``H, W`` only give the map's shape: each
            direction's data stays in its scan order, as produced by :func:`cross_scan`.
        in_channel_first: Output ``(B, C, H*W)`` if True, else ``(B, H*W, C)`` (the layout of the
            map that was scanned, as in the official flag names).
        out_channel_first: Layout of ``y``.

    Returns:
        The sum of the four directions in row-major order.
    """
    if y.dim() != 5:
        raise ValueError('cross_merge expects (B, 4, C, H, W) or (B, H, W, 4, C), got '
                         f'{tuple(y.shape)}')
    if out_channel_first:
        b, k, c, h, w = y.shape
        seq = y.reshape(b, k, c, h * w)
    else:
        b, h, w, k, c = y.shape
        seq = y.reshape(b, h * w, k, c).permute(0, 2, 3, 1)
    if k != 4:
        raise ValueError(f'cross_merge expects 4 directions, got {k}')
    forward = seq[:, 0:2] + seq[:, 2:4].flip(-1)  # undo the reversal of directions 2 and 3
    cols = forward[:, 1].reshape(b, c, w, h).transpose(2, 3).reshape(b, c, h * w)
    out = forward[:, 0] + cols
    return out if in_channel_first else out.transpose(1, 2).contiguous()
