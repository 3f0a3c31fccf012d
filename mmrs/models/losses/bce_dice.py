"""ChangeViT's BCE + Dice loss on a one-channel change logit (Zhu et al., arXiv:2406.12847,
official ``model/utils.py``)."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmrs.registry import MODELS


@MODELS.register_module()
class BCEDiceLoss(nn.Module):
    """ChangeViT's loss: ``BCE + 1 - Dice`` of a one-channel sigmoid output.

    As the official ``BCEDiceLoss``: the BCE is the mean over pixels, the Dice is computed
    over the whole batch at once (not per image), ``(2 * sum(p * t) + eps) /
    (sum(p) + sum(t) + eps)`` with ``eps = 1e-5``. Pixels labelled ``ignore_index`` (which
    the official data never has) are left out of both terms.

    Args:
        eps: Smoothing of the Dice term.
        loss_weight: Factor of the whole loss.
        loss_name: Key of the loss in the loss dict.
    """

    def __init__(self, eps: float = 1e-5, loss_weight: float = 1.0,
                 loss_name: str = 'loss_bce_dice') -> None:
        super().__init__()
        self.eps = eps
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def forward(self, logits: Tensor, target: Tensor, weight: Tensor | None = None,
                ignore_index: int = 255, **kwargs) -> Tensor:
        """Loss of ``(N, 1, H, W)`` logits against ``(N, H, W)`` 0/1 labels.

        Raises:
            ValueError: If the logits have more than one channel.
        """
        if logits.shape[1] != 1:
            raise ValueError(f'BCEDiceLoss needs one output channel, got {logits.shape[1]}')
        logits = logits[:, 0]
        valid = (target != ignore_index).to(logits.dtype)
        if weight is not None:
            valid = valid * weight
        target = torch.where(target == ignore_index, 0, target).to(logits.dtype)
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction='none')
        bce = (bce * valid).sum() / valid.sum().clamp_min(1)
        prob = logits.sigmoid() * valid
        inter = (prob * target).sum()
        dice = (2 * inter + self.eps) / (prob.sum() + (target * valid).sum() + self.eps)
        return self.loss_weight * (bce + 1 - dice)
