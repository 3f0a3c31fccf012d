"""The ChangeViT decoder as an mmseg decode head (its BCE + Dice loss:
:class:`mmrs.models.losses.BCEDiceLoss`).

Zhu et al., "ChangeViT: Unleashing Plain Vision Transformers for Change Detection",
arXiv:2406.12847 (official ``model/decoder.py``, ``Decoder`` without its feature injector,
which mmrs runs in :class:`~mmrs.models.backbones.ChangeViTEncoder`). At each level the
dates are compared by *difference modelling*, a conv stack on ``[x, y, |x - y|]`` (1x1 conv,
BN, ReLU, then three 3x3 convs with ReLUs between them, back to the level's width); the
levels are merged top-down (1x1 conv + stride-2 transposed conv, added to the next finer
level), and a transposed conv and a 3x3 conv give **one** change logit per pixel at the input
resolution. The official model returns its sigmoid; mmrs keeps the logit (``seg_logits``)
and thresholds the sigmoid at :attr:`threshold` (0.5, as the official evaluation).
"""
from collections.abc import Sequence

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from torch import Tensor

from mmrs.registry import MODELS
from mmrs.utils.typing_utils import SampleList


def difference_block(dim: int, decay: int, norm_cfg: dict) -> nn.Sequential:
    """The official ``Decoder.mlp[i]``: ``3 * dim -> dim / decay -> dim`` convs (one BN)."""
    mid = dim // decay
    return nn.Sequential(
        nn.Conv2d(dim * 3, mid, 1, bias=False),
        build_norm_layer(norm_cfg, mid)[1],
        nn.ReLU(),
        nn.Conv2d(mid, mid, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.Conv2d(mid, mid, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.Conv2d(mid, dim, 3, padding=1, bias=False))


def upsample_block(in_dim: int, out_dim: int) -> nn.Sequential:
    """1x1 conv to ``out_dim``, then a stride-2 4x4 transposed conv (size x2 exactly)."""
    return nn.Sequential(
        nn.Conv2d(in_dim, out_dim, 1, bias=False),
        nn.ConvTranspose2d(out_dim, out_dim, kernel_size=4, stride=2, padding=1))


@MODELS.register_module()
class ChangeViTHead(BaseDecodeHead):
    """Difference modelling per level, top-down merge, one-channel classifier.

    Its inputs are the four levels ``c2..c5`` of *both* dates concatenated along channels
    (``FeatureFusionNeck(policy='concat')``); each level is split back into ``x`` and ``y``.

    State-dict names map one-to-one to the official ``decoder.*`` ones (see
    ``tools/model_converters/changevit2mmrs.py``): ``diff.{i}`` = ``mlp.{i}``,
    ``up_c5``/``up_c4``/``up_c3`` as official, ``up_cls`` = ``classfier.0`` and ``conv_seg``
    = ``classfier.1``.

    Args:
        in_channels: Channels of *one date* at each level, ``(64, 128, 256, vit_dims)``.
        decay: Width reduction inside the difference blocks (official 4).
        **kwargs: Passed to ``BaseDecodeHead``: ``num_classes=2`` with ``out_channels=1``
            (the default here) and ``threshold`` (default 0.5), ``loss_decode``
            (default :class:`BCEDiceLoss`), ``norm_cfg`` (default BN) ...
    """

    def __init__(self, in_channels: Sequence[int] = (64, 128, 256, 384), decay: int = 4,
                 **kwargs) -> None:
        if len(in_channels) != 4:
            raise ValueError(f'ChangeViTHead takes 4 levels (c2..c5), got {in_channels}')
        kwargs.setdefault('num_classes', 2)
        kwargs.setdefault('out_channels', 1)
        kwargs.setdefault('threshold', 0.5)
        kwargs.setdefault('dropout_ratio', 0.0)
        kwargs.setdefault('norm_cfg', dict(type='BN', requires_grad=True))
        kwargs.setdefault('loss_decode', dict(type='mmrs.BCEDiceLoss'))
        kwargs.setdefault('init_cfg', None)
        kwargs.setdefault('in_index', [0, 1, 2, 3])
        super().__init__(in_channels=list(in_channels), channels=in_channels[0],
                         input_transform='multiple_select', **kwargs)
        c2, c3, c4, c5 = in_channels
        self.diff = nn.ModuleList(
            [difference_block(dim, decay, self.norm_cfg) for dim in in_channels])
        self.up_c5 = upsample_block(c5, c4)
        self.up_c4 = upsample_block(c4, c3)
        self.up_c3 = upsample_block(c3, c2)
        self.up_cls = nn.ConvTranspose2d(c2, c2, kernel_size=4, stride=2, padding=1)
        self.conv_seg = nn.Conv2d(c2, self.out_channels, 3, padding=1, bias=False)
        self._official_init()

    def _official_init(self) -> None:
        """The official ``weight_init(decoder)``: Kaiming (fan-in, ReLU) for the plain convs
        of ``up_*`` and the classifier; the difference blocks keep PyTorch's default."""
        for module in (*self.up_c5, *self.up_c4, *self.up_c3, self.conv_seg):
            if type(module) is nn.Conv2d:
                nn.init.kaiming_normal_(module.weight, mode='fan_in', nonlinearity='relu')

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Logits ``(N, out_channels, 2 H2, 2 W2)`` from the concatenated pairs of levels."""
        feats = []
        for feat, block in zip(self._transform_inputs(inputs), self.diff):
            x, y = feat.chunk(2, dim=1)
            feats.append(block(torch.cat([x, y, torch.abs(x - y)], dim=1)))
        c2, c3, c4, c5 = feats
        c4 = c4 + self.up_c5(c5)
        c3 = c3 + self.up_c4(c4)
        c2 = c2 + self.up_c3(c3)
        return self.conv_seg(self.up_cls(c2))

    def loss_by_feat(self, seg_logits: Tensor, batch_data_samples: SampleList) -> dict:
        """Losses as mmseg's, with ``acc_seg`` from the thresholded sigmoid (mmseg's top-1
        accuracy is meaningless for one channel)."""
        seg_label = self._stack_batch_gt(batch_data_samples)
        seg_logits = resize(seg_logits, size=seg_label.shape[2:], mode='bilinear',
                            align_corners=self.align_corners)
        seg_label = seg_label.squeeze(1)
        losses_decode = (self.loss_decode if isinstance(self.loss_decode, nn.ModuleList)
                         else [self.loss_decode])
        loss: dict[str, Tensor] = {}
        for loss_decode in losses_decode:
            value = loss_decode(seg_logits, seg_label, ignore_index=self.ignore_index)
            name = loss_decode.loss_name
            loss[name] = loss[name] + value if name in loss else value
        with torch.no_grad():
            valid = seg_label != self.ignore_index
            pred = (seg_logits[:, 0].sigmoid() > self.threshold).long()
            correct = ((pred == seg_label) & valid).sum()
            loss['acc_seg'] = correct.float() * 100 / valid.sum().clamp_min(1)
        return loss
