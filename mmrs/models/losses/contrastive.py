"""CLIP's symmetric contrastive (InfoNCE) loss, with negatives gathered from every rank.

Radford et al., "Learning Transferable Visual Models From Natural Language Supervision",
ICML 2021: for a batch of ``N`` matching image/text pairs with L2-normalised embeddings
``I`` and ``T`` the logits are ``s * I @ T.T`` (``s = exp(t)``, ``t`` the model's learnable
``logit_scale``); the loss is the mean of the image->text and text->image cross-entropies
with the diagonal as targets. As open_clip's ``ClipLoss`` the loss receives ``s`` itself; the
model bounds it (``t`` clamped to ``[0, ln 100]``, as ``open_clip_train/train.py`` does after
every step). The distributed variant follows ``open_clip/loss.py`` (``gather_features`` +
``ClipLoss``): every rank all-gathers the embeddings of all ranks so that each pair is
contrasted with the whole global batch, not only with the local one.

Gradients under data parallelism (DDP/FSDP average parameter gradients over ``W`` ranks):

- ``gather_with_grad=True`` (default): the gather is differentiable; its backward sums, over
  all ranks, the gradient every rank's loss sends to each slice and returns to the owner its
  own slice. With either ``local_loss`` setting the averaged parameter gradient then equals
  the single-process gradient of the full-batch loss exactly.
- ``gather_with_grad=False``: the other ranks' embeddings are constants and only this rank's
  loss reaches its own slice (open_clip's default). With ``local_loss=False`` the tower
  gradients are then ``1/W`` of the full-batch ones (the ``logit_scale`` one is exact), which
  the learning rate absorbs; it saves the backward communication.
"""
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmrs.registry import MODELS

def _world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _batch_sizes(local: Tensor, world_size: int) -> list[int]:
    """Every rank's batch size (ranks may hold different numbers of pairs)."""
    size = torch.tensor([local.shape[0]], device=local.device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(world_size)]
    dist.all_gather(sizes, size)
    return [int(s.item()) for s in sizes]


def _gather_values(local: Tensor, sizes: list[int]) -> list[Tensor]:
    """All ranks' tensors (no gradient), padded to the largest batch for all_gather."""
    longest = max(sizes)
    padded = local.detach().contiguous()
    if local.shape[0] < longest:
        padded = torch.cat([padded, padded.new_zeros(longest - local.shape[0],
                                                     *local.shape[1:])])
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return [part[:n] for part, n in zip(parts, sizes)]


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums the gradients of all ranks and keeps the own slice.

    As ``torch.distributed.nn.all_gather``, but ranks may hold different batch sizes (a
    short last batch): rows are padded to the largest for the collective and cut after.
    """

    @staticmethod
    def forward(ctx, local: Tensor, sizes: list[int],  # type: ignore[override]
                rank: int) -> Tensor:
        ctx.start = sum(sizes[:rank])
        ctx.stop = ctx.start + sizes[rank]
        parts = _gather_values(local, sizes)
        parts[rank] = local.detach()
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.start:ctx.stop], None, None


def gather_embeddings(local: Tensor, with_grad: bool = True) -> tuple[Tensor, int]:
    """Concatenate the ``(b_r, D)`` embeddings of every rank in rank order.

    Args:
        local: This rank's embeddings.
        with_grad: Differentiable gather (see the module docstring); otherwise the other
            ranks' rows are constants and the gradient reaches only ``local`` itself.

    Returns:
        ``(all_embeddings, offset)``: the ``(sum b_r, D)`` tensor and the row where this
        rank's slice starts (the label offset of its pairs). Without a process group (or with
        one rank) ``(local, 0)``.
    """
    rank, world_size = _world()
    if world_size == 1:
        return local, 0
    sizes = _batch_sizes(local, world_size)
    offset = sum(sizes[:rank])
    if with_grad:
        return _GatherWithGrad.apply(local, sizes, rank), offset
    parts = _gather_values(local, sizes)
    parts[rank] = local  # the gradient flows through the local slice only
    return torch.cat(parts), offset


@MODELS.register_module()
class CLIPContrastiveLoss(nn.Module):
    """Symmetric InfoNCE of matching image/text pairs (CLIP's training loss).

    Args:
        gather_across_ranks: Contrast with the embeddings of all ranks (global batch) when a
            process group with several ranks exists; a no-op in one process.
        local_loss: Compute only the rows of this rank's pairs against the global batch
            (labels offset by the rank's position) instead of the full global matrix on every
            rank. Same mean loss over ranks, ``W`` times less logit compute.
        gather_with_grad: Differentiable gather; see the module docstring.
        loss_weight: Multiplies the loss.
        loss_name: Key of the loss in the model's loss dict (must start with ``loss_``).
    """

    def __init__(self, gather_across_ranks: bool = True, local_loss: bool = False,
                 gather_with_grad: bool = True, loss_weight: float = 1.0,
                 loss_name: str = 'loss_contrastive') -> None:
        super().__init__()
        if not loss_name.startswith('loss_'):
            raise ValueError(f'loss_name must start with "loss_" (mmengine sums only those '
                             f'into the total loss), got {loss_name!r}')
        self.gather_across_ranks = gather_across_ranks
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        """Key of the loss in the loss dict."""
        return self._loss_name

    def forward(self, image_emb: Tensor, text_emb: Tensor,
                logit_scale: Tensor | float) -> Tensor:
        """The contrastive loss of ``B`` matching pairs (row ``i`` of both is a pair).

        Args:
            image_emb: ``(B, D)`` image embeddings, L2-normalised.
            text_emb: ``(B, D)`` text embeddings, L2-normalised.
            logit_scale: The factor of the cosine similarities, ``exp`` of the model's
                learnable ``logit_scale`` (already bounded), as open_clip's ``ClipLoss`` takes it;
                a scalar tensor (its gradient reaches the model's parameter) or a number.

        Returns:
            A scalar: ``loss_weight * (CE(image->text) + CE(text->image)) / 2``.

        Raises:
            ValueError: The embeddings are not two ``(B, D)`` tensors of one shape, or
                ``logit_scale`` is not one value.
        """
        if image_emb.ndim != 2 or image_emb.shape != text_emb.shape or not len(image_emb):
            raise ValueError(f'need image and text embeddings of one shape (B, D) with B > 0, '
                             f'got {tuple(image_emb.shape)} and {tuple(text_emb.shape)}')
        scale = torch.as_tensor(logit_scale, device=image_emb.device)
        if scale.numel() != 1:
            raise ValueError(f'logit_scale must be one value (the exponentiated temperature '
                             f'parameter), got shape {tuple(scale.shape)}')
        with torch.autocast(device_type=image_emb.device.type, enabled=False):
            # softmax over the global batch: float32 even inside an autocast region
            return self.loss_weight * self._loss(image_emb.float(), text_emb.float(),
                                                 scale.reshape(()).float())

    def _loss(self, image_emb: Tensor, text_emb: Tensor, scale: Tensor) -> Tensor:
        all_images, all_texts, offset = image_emb, text_emb, 0
        if self.gather_across_ranks:
            all_images, offset = gather_embeddings(image_emb, self.gather_with_grad)
            all_texts, _ = gather_embeddings(text_emb, self.gather_with_grad)
        if self.local_loss:
            logits_per_image = scale * image_emb @ all_texts.T
            logits_per_text = scale * text_emb @ all_images.T
            labels = torch.arange(len(image_emb), device=image_emb.device) + offset
        else:
            logits_per_image = scale * all_images @ all_texts.T
            logits_per_text = logits_per_image.T
            labels = torch.arange(len(all_images), device=image_emb.device)
        return (F.cross_entropy(logits_per_image, labels)
                + F.cross_entropy(logits_per_text, labels)) / 2
