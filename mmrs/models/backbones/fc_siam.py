"""The encoder of the FC-Siam networks.

Daudt, Le Saux and Boulch, "Fully Convolutional Siamese Networks for Change Detection",
ICIP 2018. The encoder is a small U-Net contracting path: four stages of 3x3
conv-BN-ReLU-Dropout blocks (16/32/64/128 channels; 2, 2, 3 and 3 convs) each followed by 2x2
max pooling. Used Siamese (shared weights) it gives FC-Siam-diff/-conc; fed the channel
concatenation of both dates (``backbone_input='concat'``, ``in_channels=2C``) it gives FC-EF.
"""
from collections.abc import Sequence

import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from mmrs.registry import MODELS
from mmrs.utils.typing_utils import ConfigType, OptMultiConfig


def conv_block(in_channels: int, out_channels: int, dropout: float,
               norm_cfg: ConfigType | None, act_cfg: ConfigType | None = None) -> nn.Sequential:
    """3x3 conv-BN-ReLU followed by ``Dropout2d(dropout)`` (the paper's unit)."""
    layers: list[nn.Module] = [
        ConvModule(in_channels, out_channels, 3, padding=1, norm_cfg=norm_cfg,
                   act_cfg=act_cfg or dict(type='ReLU'))
    ]
    if dropout > 0:
        layers.append(nn.Dropout2d(dropout))
    return nn.Sequential(*layers)


@MODELS.register_module()
class FCSiamEncoder(BaseModule):
    """Four-stage FC-Siam encoder returning every stage's skip feature and the bottleneck.

    Args:
        in_channels: Bands per image (``2C`` for the early-fusion FC-EF).
        channels: Output channels of the four stages.
        num_convs: Number of conv blocks in each stage.
        dropout: ``Dropout2d`` probability after each block (0.2 in the paper).
        norm_cfg: Normalisation layer config.
        init_cfg: Initialisation config.

    Returns from ``forward``: ``(skip1, skip2, skip3, skip4, bottleneck)``, where ``skip_i``
    is stage ``i`` before pooling (stride ``2**(i-1)``, ``channels[i-1]`` channels) and
    ``bottleneck`` is the pooled output of stage 4 (stride 16, ``channels[-1]`` channels).

    Raises:
        ValueError: If ``channels`` and ``num_convs`` differ in length.
    """

    def __init__(self,
                 in_channels: int = 3,
                 channels: Sequence[int] = (16, 32, 64, 128),
                 num_convs: Sequence[int] = (2, 2, 3, 3),
                 dropout: float = 0.2,
                 norm_cfg: ConfigType | None = dict(type='BN'),
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(channels) != len(num_convs):
            raise ValueError(f'channels {channels} and num_convs {num_convs} differ in length')
        self.channels = tuple(channels)
        self.stages = nn.ModuleList()
        c_in = in_channels
        for c_out, n in zip(channels, num_convs):
            blocks = [conv_block(c_in if j == 0 else c_out, c_out, dropout, norm_cfg)
                      for j in range(n)]
            self.stages.append(nn.Sequential(*blocks))
            c_in = c_out
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)

    @property
    def out_channels(self) -> list[int]:
        """Channels of the returned features (skips, then the bottleneck)."""
        return [*self.channels, self.channels[-1]]

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """Encode ``(N, C, H, W)`` images (``H``, ``W`` ideally multiples of 16)."""
        outs = []
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = self.pool(x)
            x = stage(x)
            outs.append(x)
        outs.append(self.pool(x))
        return tuple(outs)
