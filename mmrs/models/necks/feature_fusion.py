"""Per-level fusion of the two dates' feature pyramids.

A Siamese change detector runs one backbone on each date and must merge the two pyramids
before a decode head can see them. The parameter-free policies here are the ones open-cd's
``FeatureFusionNeck`` offers and that BTC (Rolih et al., "Be the Change You Want to See",
TGRS 2025) found to be a strong default (``SubDiff``: plain subtraction).
"""
from collections.abc import Sequence

import torch
from mmengine.model import BaseModule
from torch import Tensor

from mmrs.registry import MODELS
from mmrs.utils.typing_utils import OptMultiConfig

FUSION_POLICIES = ('diff', 'abs_diff', 'concat', 'sum')


def fuse_features(x1: Tensor, x2: Tensor, policy: str) -> Tensor:
    """Fuse one level of date-1 and date-2 features.

    Args:
        x1: Date-1 features, ``(N, C, H, W)``.
        x2: Date-2 features of the same shape.
        policy: One of :data:`FUSION_POLICIES`.

    Returns:
        ``x1 - x2`` (``diff``), ``|x1 - x2|`` (``abs_diff``), ``x1 + x2`` (``sum``), each with
        ``C`` channels, or ``cat([x1, x2], dim=1)`` with ``2C`` channels (``concat``).

    Raises:
        ValueError: If ``policy`` is unknown.
    """
    if policy == 'diff':
        return x1 - x2
    if policy == 'abs_diff':
        return torch.abs(x1 - x2)
    if policy == 'concat':
        return torch.cat([x1, x2], dim=1)
    if policy == 'sum':
        return x1 + x2
    raise ValueError(f'unknown fusion policy {policy!r}; expected one of {FUSION_POLICIES}')


@MODELS.register_module()
class FeatureFusionNeck(BaseModule):
    """Fuse two feature pyramids level by level, without parameters.

    ``diff`` is date 1 minus date 2, BTC's ``SubDiff`` convention (open-cd's ``diff`` is
    ``x2 - x1``; the sign makes no difference to a learned head). ``abs_diff`` is the fusion of
    FC-Siam-diff. Output channels equal the input channels except for ``concat``, which
    doubles them; :attr:`out_channels` gives them when ``in_channels`` is known, so a config
    can read them off instead of computing them by hand.

    Args:
        policy: ``'diff'``, ``'abs_diff'``, ``'concat'`` or ``'sum'``.
        in_channels: Channels of each input level (only used to report
            :attr:`out_channels`).
        out_indices: Levels to fuse and return, in this order; ``None`` returns all.
        init_cfg: Initialisation config (the neck has no parameters).

    Raises:
        ValueError: If ``policy`` is unknown.
    """

    def __init__(self,
                 policy: str = 'diff',
                 in_channels: Sequence[int] | None = None,
                 out_indices: Sequence[int] | None = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if policy not in FUSION_POLICIES:
            raise ValueError(
                f'unknown fusion policy {policy!r}; expected one of {FUSION_POLICIES}')
        self.policy = policy
        self.in_channels = list(in_channels) if in_channels is not None else None
        self.out_indices = tuple(out_indices) if out_indices is not None else None

    @property
    def out_channels(self) -> list[int] | None:
        """Channels of each returned level (``None`` when ``in_channels`` was not given)."""
        if self.in_channels is None:
            return None
        indices = self.out_indices or range(len(self.in_channels))
        factor = 2 if self.policy == 'concat' else 1
        return [self.in_channels[i] * factor for i in indices]

    def forward(self, x1: Sequence[Tensor], x2: Sequence[Tensor]) -> tuple[Tensor, ...]:
        """Fuse the date-1 and date-2 pyramids.

        Args:
            x1: Date-1 features, one tensor per level.
            x2: Date-2 features with the same shapes.

        Returns:
            The fused levels listed in ``out_indices`` (all levels by default).

        Raises:
            ValueError: If the two pyramids have different numbers of levels.
        """
        if len(x1) != len(x2):
            raise ValueError(f'date 1 has {len(x1)} feature levels, date 2 has {len(x2)}')
        indices = self.out_indices if self.out_indices is not None else range(len(x1))
        return tuple(fuse_features(x1[i], x2[i], self.policy) for i in indices)

    def extra_repr(self) -> str:
        return f'policy={self.policy!r}, out_indices={self.out_indices}'
