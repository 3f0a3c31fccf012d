"""VMamba's visual state-space block, stage, stem and downsampling layers.

Liu et al., "VMamba: Visual State Space Model", NeurIPS 2024 (arXiv:2401.10166). A VSS block is
pre-norm residual: ``x + drop_path(SS2D(norm(x)))`` then ``x + drop_path(MLP(norm2(x)))``. The stem
(``patchembed_version='v2'``) is two stride-2 3x3 convs with a norm and GELU between them; the
downsampling (``downsample_version='v3'``) a stride-2 3x3 conv and a norm (``'v2'``: a 2x2 conv).

The stem and downsampling are ``nn.Sequential`` with the official index layout (layout permutes and
identities included) so that their parameters are named exactly as in the official checkpoints
(``patch_embed.{0,2,5,7}``, ``layers.i.downsample.{1,3}``).
"""
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks import DropPath
from torch import Tensor

from .layers import Mlp, Permute, build_norm
from .ss2d import SS2D


class VSSBlock(nn.Module):
    """One visual state-space block (SS2D branch, optional MLP branch).

    Args:
        dim: Channels.
        drop_path: Stochastic-depth probability of both residual branches.
        norm_layer: ``'ln'``, ``'ln2d'`` or ``'bn'`` (the last two imply ``channel_first``).
        channel_first: Layout of the block's input and output.
        ssm_cfg: Keyword arguments of :class:`SS2D` (besides ``d_model``/``channel_first``); an
            ``ssm_ratio <= 0`` removes the SS2D branch.
        mlp_ratio: MLP hidden ratio; ``<= 0`` removes the MLP branch (VMamba's "mini" settings).
        mlp_act: MLP activation name.
        mlp_drop: MLP dropout.
        use_checkpoint: Recompute the block in the backward pass (saves memory while training).
    """

    def __init__(self, dim: int, drop_path: float = 0.0, norm_layer: str = 'ln',
                 channel_first: bool = False, ssm_cfg: dict | None = None, mlp_ratio: float = 4.0,
                 mlp_act: str = 'gelu', mlp_drop: float = 0.0,
                 use_checkpoint: bool = False) -> None:
        super().__init__()
        ssm_cfg = dict(ssm_cfg or {})
        self.ssm_branch = ssm_cfg.get('ssm_ratio', 2.0) > 0
        self.mlp_branch = mlp_ratio > 0
        self.use_checkpoint = use_checkpoint
        if self.ssm_branch:
            self.norm = build_norm(norm_layer, dim)
            self.op = SS2D(dim, channel_first=channel_first, **ssm_cfg)
        self.drop_path = DropPath(drop_path)
        if self.mlp_branch:
            self.norm2 = build_norm(norm_layer, dim)
            self.mlp = Mlp(dim, int(dim * mlp_ratio), mlp_act, mlp_drop, channel_first)

    def _forward(self, x: Tensor) -> Tensor:
        if self.ssm_branch:
            x = x + self.drop_path(self.op(self.norm(x)))
        if self.mlp_branch:
            x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to a map in the block's layout."""
        if self.use_checkpoint and self.training and x.requires_grad:
            return cp.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


class VSSStage(nn.Module):
    """A stage: ``blocks`` (kept as the stage output) then ``downsample`` (input of the next stage).

    Args:
        blocks: The stage's VSS blocks.
        downsample: The downsampling to the next stage (``nn.Identity`` for the last stage).
    """

    def __init__(self, blocks: list[nn.Module], downsample: nn.Module) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)
        self.downsample = downsample

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(stage output, downsampled input of the next stage)``."""
        x = self.blocks(x)
        return x, self.downsample(x)


def _to_first(channel_first: bool) -> nn.Module:
    return nn.Identity() if channel_first else Permute(0, 3, 1, 2)


def _to_last(channel_first: bool) -> nn.Module:
    return nn.Identity() if channel_first else Permute(0, 2, 3, 1)


def make_patch_embed_v2(in_channels: int, dim: int, norm_layer: str, channel_first: bool,
                        patch_norm: bool = True) -> nn.Sequential:
    """The stride-4 stem: conv3x3/2 -> norm -> GELU -> conv3x3/2 -> norm (``dim // 2`` between).

    Takes ``(B, in_channels, H, W)``; returns ``(B, H/4, W/4, dim)`` (``(B, dim, H/4, W/4)`` when
    ``channel_first``).
    """
    last = channel_first or not patch_norm  # the first norm runs on (B, C, H, W) already
    return nn.Sequential(
        nn.Conv2d(in_channels, dim // 2, 3, stride=2, padding=1),
        nn.Identity() if last else Permute(0, 2, 3, 1),
        build_norm(norm_layer, dim // 2) if patch_norm else nn.Identity(),
        nn.Identity() if last else Permute(0, 3, 1, 2),
        nn.GELU(),
        nn.Conv2d(dim // 2, dim, 3, stride=2, padding=1),
        _to_last(channel_first),
        build_norm(norm_layer, dim) if patch_norm else nn.Identity(),
    )


def make_downsample(dim: int, out_dim: int, norm_layer: str, channel_first: bool,
                    version: str = 'v3') -> nn.Sequential:
    """Halve the resolution: conv (``'v3'``: 3x3 stride 2 pad 1; ``'v2'``: 2x2 stride 2) -> norm.

    Raises:
        ValueError: On another version (``'v1'``, Swin's patch merging, is not implemented).
    """
    if version == 'v3':
        conv = nn.Conv2d(dim, out_dim, 3, stride=2, padding=1)
    elif version == 'v2':
        conv = nn.Conv2d(dim, out_dim, 2, stride=2)
    else:
        raise ValueError(f"downsample_version must be 'v2' or 'v3', got {version!r}")
    return nn.Sequential(_to_first(channel_first), conv, _to_last(channel_first),
                         build_norm(norm_layer, out_dim))
