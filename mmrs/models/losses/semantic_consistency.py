"""MambaSCD's similarity loss: the two dates' class probabilities agree where nothing changed.

Chen et al., "ChangeMamba", IEEE TGRS 2024; official ``changedetection/script/
train_MambaSCD.py``: ``F.mse_loss(softmax(t1) * mask, softmax(t2) * mask, reduction='mean')``
with ``mask`` the pixels whose date-1 semantic target is ignored (unchanged, as the semantic
targets of SECOND exist only inside changed areas, or unlabelled), broadcast over the classes.
The mean runs over *all* ``B * C * H * W`` entries, masked ones included (they contribute 0),
so the loss scale depends on the share of unchanged pixels exactly as in the official recipe.
"""
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmrs.registry import MODELS


@MODELS.register_module()
class SemanticConsistencyLoss(nn.Module):
    """Masked mean squared difference of two softmax maps (MambaSCD's similarity loss).

    Args:
        loss_weight: Multiplies the loss (official total: ``0.5 * 0.5 = 0.25``).
        loss_name: Key of the loss in the loss dict (must start with ``loss_``).
    """

    def __init__(self, loss_weight: float = 1.0,
                 loss_name: str = 'loss_consistency') -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        """Key of the loss in the loss dict."""
        return self._loss_name

    def forward(self, logits_a: Tensor, logits_b: Tensor, mask: Tensor) -> Tensor:
        """``loss_weight * mean((softmax(a) * m - softmax(b) * m) ** 2)`` over ``B, C, H, W``.

        Args:
            logits_a: ``(B, C, H, W)`` date-1 logits.
            logits_b: ``(B, C, H, W)`` date-2 logits.
            mask: ``(B, H, W)`` or ``(B, 1, H, W)``, nonzero where the dates should agree.

        Raises:
            ValueError: If the shapes do not match.
        """
        if logits_a.shape != logits_b.shape or logits_a.ndim != 4:
            raise ValueError(f'need two (B, C, H, W) logit maps of one shape, got '
                             f'{tuple(logits_a.shape)} and {tuple(logits_b.shape)}')
        if mask.ndim == 4:
            mask = mask[:, 0]
        if mask.shape != (logits_a.shape[0], *logits_a.shape[2:]):
            raise ValueError(f'mask {tuple(mask.shape)} does not match logits '
                             f'{tuple(logits_a.shape)}')
        m = (mask != 0).to(logits_a.dtype)[:, None]
        diff = F.softmax(logits_a, dim=1) * m - F.softmax(logits_b, dim=1) * m
        return self.loss_weight * diff.pow(2).mean()
