"""ChangeMamba's binary change decoder (MambaBCD) as an mmseg decode head.

Chen et al., "ChangeMamba: Remote Sensing Change Detection With Spatiotemporal State Space
Model", IEEE TGRS 2024 (arXiv:2404.03425). Official code: github.com/ChenHongruixuan/MambaCD,
``changedetection/models/ChangeDecoder.py`` (the decoder) and ``changedetection/models/MambaBCD.py``
(``STMambaBCD``: shared VMamba encoder, decoder, ``main_clf`` 1x1 conv to 2 classes, bilinear
upsampling to the input size).

At every encoder level ``i`` (deepest first) the two dates' features are related by three
spatio-temporal mechanisms, each a 1x1 conv to 128 channels followed by one VSS block:

- *parallel* (``st_block_i1``): the channel concatenation ``[pre, post]``;
- *sequential* (``st_block_i2``): the two maps interleaved column by column (``pre`` in the even
  columns, ``post`` in the odd ones), so the 2-D selective scan alternates between the dates;
- *cross* (``st_block_i3``): the two maps side by side (``[pre | post]`` along the width).

The parallel output and the two halves of each of the other two (five 128-channel maps) are
concatenated and fused by a 1x1 conv + BN + ReLU (``fuse_layer_i``); the result is added to the
bilinearly upsampled coarser level and smoothed by a residual block (``smooth_layer_i``, not on the
deepest level). The finest map goes through the classifier (mmseg's ``conv_seg``, the official
``main_clf``).

The head expects, per level, the channel concatenation ``[pre, post]`` (``FeatureFusionNeck`` with
``policy='concat'``); it splits it back in half. Parameter names equal the official ``decoder.*``
names (``st_block_{4..1}{1,2,3}.{0,2}.*``, ``fuse_layer_*.{0,1}.*``,
``smooth_layer_*.{conv1,bn1,conv2,bn2}.*``); only ``main_clf`` is called ``conv_seg``
(see :data:`MAMBABCD_KEY_MAP`).
"""
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from mmrs.registry import MODELS
from ..backbones.vmamba.blocks import VSSBlock
from ..backbones.vmamba.layers import NORM_LAYOUTS, Permute

#: Official ``STMambaBCD`` key prefixes -> mmrs ``SiameseChangeDetector`` key prefixes.
MAMBABCD_KEY_MAP: dict[str, str] = {
    'encoder.': 'backbone.',
    'decoder.': 'decode_head.',
    'main_clf.': 'decode_head.conv_seg.',
}

#: SS2D settings of ChangeMamba's vssm1 configs, which the official decoder's VSS blocks share
#: with the encoder (``ssm_d_state=1``, ``ssm_ratio=2``, ``forward_type='v3noz'``, ...).
CHANGEMAMBA_SSM_CFG: dict = dict(d_state=1, ssm_ratio=2.0, dt_rank='auto', act='silu', d_conv=3,
                                 conv_bias=False, dropout=0.0, forward_type='v3noz')


class ResBlock(nn.Module):
    """The official smoothing block: two 3x3 conv-BN (no bias) with an identity shortcut, ReLU.

    Args:
        channels: Input and output channels.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        """``relu(x + bn2(conv2(relu(bn1(conv1(x))))))``."""
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + x)


def interleave_columns(pre: Tensor, post: Tensor) -> Tensor:
    """``(B, C, H, 2W)`` map with ``pre`` in the even and ``post`` in the odd columns."""
    return torch.stack([pre, post], dim=-1).flatten(-2)


def _upsample_add(x: Tensor, y: Tensor) -> Tensor:
    return F.interpolate(x, size=y.shape[-2:], mode='bilinear', align_corners=False) + y


@MODELS.register_module()
class MambaBCDHead(BaseDecodeHead):
    """ChangeMamba's spatio-temporal change decoder (MambaBCD) with its 2-class classifier.

    Args:
        in_channels: Channels of the *fused* inputs, i.e. twice the encoder dims (the head takes
            ``[pre, post]`` channel concatenations), finest level first, four levels.
        channels: Width of the decoder (official: 128).
        norm_layer: Norm of the decoder's VSS blocks, ``'ln'`` (official vssm1) or ``'ln2d'``.
        ssm_cfg: :class:`~mmrs.models.backbones.vmamba.SS2D` arguments of the VSS blocks
            (default :data:`CHANGEMAMBA_SSM_CFG`); ``scan_backend``/``chunk_size`` may be added,
            but the ChangeMamba detectors' ``scan_backend`` (one knob for encoder and decoders,
            :func:`~mmrs.models.backbones.vmamba.set_scan_backend`) overrides them.
        mlp_ratio: MLP ratio of the VSS blocks (official: 4).
        drop_path: Stochastic depth of every decoder VSS block (official: 0.1).
        use_checkpoint: Gradient checkpointing of the VSS blocks.
        **kwargs: :class:`mmseg BaseDecodeHead` arguments (``num_classes``, ``loss_decode``,
            ``align_corners``...). ``dropout_ratio`` defaults to 0 here (the official model has
            no dropout before the classifier); ``in_index`` is ``[0, 1, 2, 3]``.

    Raises:
        ValueError: If there are not four input levels or a level's channels are odd.
    """

    def __init__(self, in_channels: Sequence[int], channels: int = 128, norm_layer: str = 'ln',
                 ssm_cfg: dict | None = None, mlp_ratio: float = 4.0, drop_path: float = 0.1,
                 use_checkpoint: bool = False, **kwargs) -> None:
        in_channels = list(in_channels)
        if len(in_channels) != 4 or any(c % 2 for c in in_channels):
            raise ValueError('MambaBCDHead needs four levels of [pre, post] concatenations '
                             f'(even channels), got in_channels={in_channels}')
        if norm_layer not in NORM_LAYOUTS:
            raise ValueError(f'norm_layer must be one of {sorted(NORM_LAYOUTS)}, got '
                             f'{norm_layer!r}')
        kwargs.setdefault('dropout_ratio', 0.0)
        kwargs.setdefault('in_index', [0, 1, 2, 3])
        kwargs.setdefault('input_transform', 'multiple_select')
        # mmseg's default loss is a bare 'CrossEntropyLoss', which the mmrs scope cannot find.
        kwargs.setdefault('loss_decode', dict(type='mmseg.CrossEntropyLoss', loss_weight=1.0))
        super().__init__(in_channels, channels, **kwargs)
        channel_first = NORM_LAYOUTS[norm_layer]
        ssm_cfg = dict(CHANGEMAMBA_SSM_CFG if ssm_cfg is None else ssm_cfg)
        dims = [c // 2 for c in in_channels]

        def st_block(in_ch: int) -> nn.Sequential:
            # Official layout: conv, (permute), VSSBlock, (permute) -> keys .0.* and .2.*.
            return nn.Sequential(
                nn.Conv2d(in_ch, channels, 1),
                nn.Identity() if channel_first else Permute(0, 2, 3, 1),
                VSSBlock(channels, drop_path, norm_layer, channel_first, ssm_cfg, mlp_ratio,
                         'gelu', 0.0, use_checkpoint),
                nn.Identity() if channel_first else Permute(0, 3, 1, 2),
            )

        for level in range(4, 0, -1):
            dim = dims[level - 1]
            self.add_module(f'st_block_{level}1', st_block(2 * dim))
            self.add_module(f'st_block_{level}2', st_block(dim))
            self.add_module(f'st_block_{level}3', st_block(dim))
        for level in range(4, 0, -1):
            self.add_module(f'fuse_layer_{level}', nn.Sequential(
                nn.Conv2d(5 * channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU()))
        for level in range(3, 0, -1):
            self.add_module(f'smooth_layer_{level}', ResBlock(channels))

    def _level(self, level: int, pre: Tensor, post: Tensor) -> Tensor:
        """Parallel, sequential and cross modelling of one level, fused to ``channels``."""
        w = pre.shape[-1]
        p1 = getattr(self, f'st_block_{level}1')(torch.cat([pre, post], dim=1))
        p2 = getattr(self, f'st_block_{level}2')(interleave_columns(pre, post))
        p3 = getattr(self, f'st_block_{level}3')(torch.cat([pre, post], dim=-1))
        fused = torch.cat([p1, p2[..., 0::2], p2[..., 1::2], p3[..., :w], p3[..., w:]], dim=1)
        return getattr(self, f'fuse_layer_{level}')(fused)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Change logits at the finest level (stride 4) from four ``[pre, post]`` levels."""
        feats = self._transform_inputs(inputs)
        pairs = [f.chunk(2, dim=1) for f in feats]
        out = self._level(4, *pairs[3])
        for level in (3, 2, 1):
            out = _upsample_add(out, self._level(level, *pairs[level - 1]))
            out = getattr(self, f'smooth_layer_{level}')(out)
        return self.cls_seg(out)
