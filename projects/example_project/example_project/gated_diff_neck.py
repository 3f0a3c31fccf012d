"""A gated-difference fusion neck, the module this example project contributes.

At every pyramid level the neck computes the absolute feature difference of the two dates and
scales it by a learned per-pixel gate computed from both dates' features, so the decoder sees
differences the gate considers relevant (a minimal form of the attention fusion used by many
CD papers). It shows the pattern a user copies: subclass ``BaseModule``, register on
``mmrs.registry.MODELS``, and build it from a config by name.
"""
from collections.abc import Sequence

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmrs.registry import MODELS


@MODELS.register_module()
class GatedDiffNeck(BaseModule):
    """Fuse bitemporal pyramids as ``|f1 - f2| * sigmoid(conv([f1, f2]))`` per level.

    Args:
        in_channels: Channels of each pyramid level (same for both dates).
        init_cfg: Initialisation config.
    """

    def __init__(self, in_channels: Sequence[int], init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.gates = nn.ModuleList(
            nn.Conv2d(2 * channels, 1, kernel_size=3, padding=1) for channels in in_channels)

    def forward(self, feats_from: Sequence[Tensor],
                feats_to: Sequence[Tensor]) -> tuple[Tensor, ...]:
        if len(feats_from) != len(self.gates) or len(feats_to) != len(self.gates):
            raise ValueError(f'GatedDiffNeck expects {len(self.gates)} levels, got '
                             f'{len(feats_from)} and {len(feats_to)}')
        fused = []
        for gate, a, b in zip(self.gates, feats_from, feats_to):
            weight = torch.sigmoid(gate(torch.cat([a, b], dim=1)))
            fused.append((a - b).abs() * weight)
        return tuple(fused)
