"""Small layout-aware layers shared by the VMamba blocks.

VMamba (Liu et al., "VMamba: Visual State Space Model", NeurIPS 2024) runs either channel-last
(``(B, H, W, C)``, ``nn.LayerNorm`` + ``nn.Linear``; ChangeMamba's setting) or channel-first
(``(B, C, H, W)``, ``LayerNorm2d``/``BatchNorm2d`` + 1x1 convolutions). Both layouts hold the
same parameters under the same names, so one checkpoint loads into either.
"""
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

#: Norm kinds accepted by :func:`build_norm` and whether they imply the channel-first layout.
NORM_LAYOUTS = {'ln': False, 'ln2d': True, 'bn': True}

#: Activations selectable by name in the arch settings (the official names).
ACTIVATIONS = {'silu': nn.SiLU, 'gelu': nn.GELU, 'relu': nn.ReLU, 'sigmoid': nn.Sigmoid}


class Permute(nn.Module):
    """``x.permute(*dims)`` as a module, so layout changes sit inside ``nn.Sequential`` stems."""

    def __init__(self, *dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: Tensor) -> Tensor:
        """Permute ``x``."""
        return x.permute(*self.dims)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a ``(B, C, H, W)`` map (parameters as ``nn.LayerNorm``)."""

    def forward(self, x: Tensor) -> Tensor:
        """Normalise each pixel's channel vector."""
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                         self.eps)
        return x.permute(0, 3, 1, 2)


class Linear2d(nn.Linear):
    """A per-pixel linear map on ``(B, C, H, W)`` (a 1x1 convolution with ``nn.Linear`` weights).

    Keeping the ``(out, in)`` weight of ``nn.Linear`` lets the channel-first and channel-last
    layouts share checkpoints and the same initialisation.
    """

    def forward(self, x: Tensor) -> Tensor:
        """Apply the linear map to every pixel."""
        return F.conv2d(x, self.weight[:, :, None, None], self.bias)


def build_norm(kind: str, dim: int) -> nn.Module:
    """Build the norm named ``kind`` (``'ln'``, ``'ln2d'`` or ``'bn'``) over ``dim`` channels.

    Raises:
        ValueError: On an unknown kind.
    """
    if kind == 'ln':
        return nn.LayerNorm(dim)
    if kind == 'ln2d':
        return LayerNorm2d(dim)
    if kind == 'bn':
        return nn.BatchNorm2d(dim)
    raise ValueError(f'norm_layer must be one of {sorted(NORM_LAYOUTS)}, got {kind!r}')


def build_act(name: str) -> nn.Module:
    """Build the activation named ``name`` (a key of :data:`ACTIVATIONS`).

    Raises:
        ValueError: On an unknown name.
    """
    if name not in ACTIVATIONS:
        raise ValueError(f'activation must be one of {sorted(ACTIVATIONS)}, got {name!r}')
    return ACTIVATIONS[name]()


class Mlp(nn.Module):
    """The block's feed-forward branch: ``fc2(drop(act(fc1(x))))`` followed by dropout.

    Args:
        dim: Input and output channels.
        hidden_dim: Hidden channels (``mlp_ratio * dim``).
        act: Activation name.
        drop: Dropout probability after the activation and after ``fc2``.
        channel_first: Use per-pixel :class:`Linear2d` on ``(B, C, H, W)`` instead of ``nn.Linear``.
    """

    def __init__(self, dim: int, hidden_dim: int, act: str = 'gelu', drop: float = 0.0,
                 channel_first: bool = False) -> None:
        super().__init__()
        linear = Linear2d if channel_first else nn.Linear
        self.fc1 = linear(dim, hidden_dim)
        self.act = build_act(act)
        self.fc2 = linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the MLP pixel-wise."""
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
