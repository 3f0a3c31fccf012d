"""The decoder of FC-Siam-diff (and FC-Siam-conc) as an mmseg decode head.

Daudt, Le Saux and Boulch, "Fully Convolutional Siamese Networks for Change Detection",
ICIP 2018. The decoder mirrors the encoder: per stage a stride-2 3x3 transposed conv, a
concatenation with that stage's skip feature, and 3x3 conv-BN-ReLU-Dropout blocks; a final
3x3 conv gives the class scores.

Where our wiring differs from the paper (and from the authors' code):

- The skips come from :class:`~mmrs.models.necks.FeatureFusionNeck`. With
  ``policy='abs_diff'`` they are ``|f1 - f2|``, as in FC-Siam-diff; with ``'concat'`` they
  are ``[f1, f2]`` as in FC-Siam-conc (set ``in_channels`` to the doubled channels).
- The bottleneck, too, goes through the neck, so the decoder starts from the fused pooled
  features of both dates (``|p1 - p2|``). In the authors' code it starts from the pooled
  features of date 2 only.
- Skips larger than the upsampled map are matched by replicate padding, as in the authors'
  code; inputs padded to multiples of 16 (``size_divisor=32``) never need it.
"""
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from mmrs.registry import MODELS
from ..backbones.fc_siam import conv_block


@MODELS.register_module()
class FCSiamDiffHead(BaseDecodeHead):
    """U-Net style decoder over fused skip features and a fused bottleneck.

    Decoder stage ``k`` (deepest first) upsamples the running map with a transposed conv
    (channels kept), concatenates skip ``k`` and applies ``num_convs[k]`` conv blocks: all
    output ``decoder_channels[k]`` except the last, which outputs ``decoder_channels[k-1]``
    (for stage 0 the last conv is the classifier ``conv_seg``, a 3x3 conv as in the paper).

    Args:
        in_channels: Channels of the fused skips (shallow to deep) followed by the fused
            bottleneck; ``(16, 32, 64, 128, 128)`` for the default encoder with ``abs_diff``.
        decoder_channels: Channels of the decoder stages, shallow to deep (the encoder's).
        num_convs: Conv blocks per decoder stage, shallow to deep.
        dropout: ``Dropout2d`` probability after each decoder block (0.2 in the paper).
        **kwargs: Passed to mmseg's ``BaseDecodeHead`` (``num_classes``, ``loss_decode``,
            ``norm_cfg`` (default BN), ``align_corners`` ...). ``channels``,
            ``in_index`` and ``input_transform`` are set here.

    Raises:
        ValueError: If the lengths of the three sequences do not match, or a stage has too
            few convs.
    """

    def __init__(self,
                 in_channels: Sequence[int] = (16, 32, 64, 128, 128),
                 decoder_channels: Sequence[int] = (16, 32, 64, 128),
                 num_convs: Sequence[int] = (2, 2, 3, 3),
                 dropout: float = 0.2,
                 **kwargs) -> None:
        if len(in_channels) != len(decoder_channels) + 1 or len(num_convs) != len(
                decoder_channels):
            raise ValueError('need one in_channels entry per decoder stage plus the bottleneck '
                             f'and one num_convs per stage; got in_channels={in_channels}, '
                             f'decoder_channels={decoder_channels}, num_convs={num_convs}')
        if num_convs[0] < 2 or min(num_convs) < 1:
            raise ValueError('every decoder stage needs a conv block and stage 0 two (its '
                             f'last one is the classifier); got num_convs={num_convs}')
        kwargs.setdefault('dropout_ratio', 0.0)
        kwargs.setdefault('norm_cfg', dict(type='BN'))
        kwargs.setdefault('in_index', list(range(len(in_channels))))
        super().__init__(
            in_channels=list(in_channels),
            channels=decoder_channels[0],
            input_transform='multiple_select',
            **kwargs)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        c_up = in_channels[-1]
        for k in range(len(decoder_channels) - 1, -1, -1):
            self.ups.insert(0, nn.ConvTranspose2d(
                c_up, c_up, kernel_size=3, stride=2, padding=1, output_padding=1))
            c_out = decoder_channels[k]
            n_blocks = num_convs[k] - 1 if k == 0 else num_convs[k]
            blocks, c_in = [], c_up + in_channels[k]
            for j in range(n_blocks):
                last = k > 0 and j == n_blocks - 1
                c_next = decoder_channels[k - 1] if last else c_out
                blocks.append(conv_block(c_in, c_next, dropout, self.norm_cfg, self.act_cfg))
                c_in = c_next
            self.decoders.insert(0, nn.Sequential(*blocks))
            c_up = c_in
        # The paper's classifier is a 3x3 conv (conv11d), not mmseg's usual 1x1.
        self.conv_seg = nn.Conv2d(self.channels, self.out_channels, kernel_size=3, padding=1)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Decode ``(skip1, ..., skipK, bottleneck)`` into logits at the skip-1 resolution."""
        feats = self._transform_inputs(inputs)
        x = feats[-1]
        for k in range(len(self.decoders) - 1, -1, -1):
            x = self.ups[k](x)
            skip = feats[k]
            dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
            if dh or dw:
                x = F.pad(x, (0, dw, 0, dh), mode='replicate')
            x = self.decoders[k](torch.cat([x, skip], dim=1))
        return self.cls_seg(x)
