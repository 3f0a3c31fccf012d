"""Siamese encoder–fusion–decoder change detection.

The composition of open-cd's ``SiamEncoderDecoder``/``DIEncoderDecoder`` and of BTC
(Rolih et al., "Be the Change You Want to See", TGRS 2025): one backbone shared by both
dates, a neck fusing the two pyramids level by level, and any mmseg ``BaseDecodeHead``
(which trains on :class:`~mmrs.structures.ChangeDataSample` unchanged, because it
subclasses ``SegDataSample``). Early-fusion (FC-EF) and dual-input backbones plug in through
``backbone_input``.
"""
from collections.abc import Sequence
from typing import Any

import torch
from mmengine.model import ModuleList
from mmengine.utils import is_seq_of
from torch import Tensor

from mmrs.registry import MODELS
from mmrs.utils.typing_utils import (ConfigType, OptConfigType, OptMultiConfig,
                                     OptSampleList, SampleList)
from .base import BaseChangeDetector

BACKBONE_INPUTS = ('siamese', 'concat', 'dual')


def _as_levels(feats: Tensor | Sequence[Tensor]) -> tuple[Tensor, ...]:
    return (feats, ) if isinstance(feats, Tensor) else tuple(feats)


def _add_prefix(losses: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {f'{prefix}.{key}': value for key, value in losses.items()}


@MODELS.register_module()
class SiameseChangeDetector(BaseChangeDetector):
    """Backbone on both dates → fusion neck → decode head (+ optional auxiliary heads).

    ``backbone_input`` selects how the two dates reach the backbone:

    - ``'siamese'`` (default): the same backbone (shared weights) runs on date 1 and date 2
      as one batch of ``2N`` images; the neck must fuse them, ``neck(feats1, feats2)``.
      Note that BatchNorm in training then normalises over both dates together.
    - ``'concat'``: early fusion; the backbone sees ``(N, 2C, H, W)`` (FC-EF style).
    - ``'dual'``: ``backbone(x1, x2)`` for backbones that exchange information between
      dates. If it returns a pair of pyramids the neck is called as ``neck(f1, f2)``,
      otherwise as ``neck(feats)``.

    With ``'concat'``/``'dual'`` the neck is optional and single-input necks (mmseg's FPN)
    work. ``train_cfg`` is passed to the heads' ``loss``; ``test_cfg`` is described in
    :class:`BaseChangeDetector`.

    Args:
        backbone: Backbone config, e.g. ``dict(type='mmseg.ResNetV1c', depth=18)``.
        neck: Neck config, e.g. ``dict(type='FeatureFusionNeck', policy='diff')``; required
            for ``'siamese'``.
        decode_head: Decode head config (an mmseg ``BaseDecodeHead``).
        auxiliary_head: One config or a list of configs of auxiliary heads on the same
            (fused) features, trained only.
        train_cfg: Training config.
        test_cfg: Testing config.
        data_preprocessor: Data preprocessor config (normally ``ChangeDataPreprocessor``).
        pretrained: Checkpoint for the backbone; sets the backbone's ``init_cfg`` to
            ``dict(type='Pretrained', checkpoint=pretrained)``.
        init_cfg: Initialisation config of the whole detector.
        backbone_input: ``'siamese'``, ``'concat'`` or ``'dual'``.

    Raises:
        ValueError: If ``backbone_input`` is unknown or ``'siamese'`` has no neck.
    """

    def __init__(self,
                 backbone: ConfigType,
                 neck: OptConfigType,
                 decode_head: ConfigType,
                 auxiliary_head: ConfigType | list[ConfigType] | None = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 pretrained: str | None = None,
                 init_cfg: OptMultiConfig = None,
                 backbone_input: str = 'siamese') -> None:
        super().__init__(train_cfg=train_cfg, test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if backbone_input not in BACKBONE_INPUTS:
            raise ValueError(
                f'unknown backbone_input {backbone_input!r}; expected one of {BACKBONE_INPUTS}')
        if backbone_input == 'siamese' and neck is None:
            raise ValueError('a Siamese backbone needs a neck that fuses the two dates, e.g. '
                             "dict(type='FeatureFusionNeck', policy='diff')")
        self.backbone_input = backbone_input
        if pretrained is not None:
            backbone = dict(backbone, init_cfg=dict(type='Pretrained', checkpoint=pretrained))
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck) if neck is not None else None
        self.decode_head = MODELS.build(decode_head)
        self.align_corners = self.decode_head.align_corners
        self.num_classes = self.decode_head.num_classes
        self.out_channels = self.decode_head.out_channels
        if auxiliary_head is None:
            self.auxiliary_head = None
        elif isinstance(auxiliary_head, dict):
            self.auxiliary_head = MODELS.build(auxiliary_head)
        else:
            self.auxiliary_head = ModuleList([MODELS.build(cfg) for cfg in auxiliary_head])

    def extract_pair_feat(self, inputs: Tensor) -> tuple[tuple[Tensor, ...], ...]:
        """Per-date pyramids of the shared backbone (``'siamese'`` only).

        Both dates go through the backbone as one ``2N`` batch, which is faster than two
        calls; the output is split back into ``(feats1, feats2)``.
        """
        n = inputs.shape[0]
        feats = _as_levels(self.backbone(torch.cat([inputs[:, 0], inputs[:, 1]], dim=0)))
        return tuple(f[:n] for f in feats), tuple(f[n:] for f in feats)

    def extract_feat(self, inputs: Tensor) -> tuple[Tensor, ...]:
        """Fused features of a ``(N, 2, C, H, W)`` batch, as the decode head consumes them."""
        if self.backbone_input == 'siamese':
            return self.neck(*self.extract_pair_feat(inputs))
        if self.backbone_input == 'concat':
            feats = self.backbone(inputs.flatten(1, 2))
        else:
            feats = self.backbone(inputs[:, 0], inputs[:, 1])
        if self.neck is None:
            return _as_levels(feats)
        is_pair = (isinstance(feats, (tuple, list)) and len(feats) == 2
                   and all(is_seq_of(f, Tensor) for f in feats))
        return self.neck(*feats) if is_pair else self.neck(feats)

    def encode_decode(self, inputs: Tensor, batch_img_metas: list[dict]) -> Tensor:
        """Change logits at the input size (used by whole/slide inference)."""
        return self.decode_head.predict(self.extract_feat(inputs), batch_img_metas,
                                        self.test_cfg)

    def head_losses(self, feats: Sequence[Tensor], data_samples: SampleList) -> dict:
        """Losses of the decode head (``decode.*``) and auxiliary heads (``aux*.``)."""
        losses = _add_prefix(self.decode_head.loss(feats, data_samples, self.train_cfg),
                             'decode')
        if isinstance(self.auxiliary_head, ModuleList):
            for i, head in enumerate(self.auxiliary_head):
                losses.update(_add_prefix(head.loss(feats, data_samples, self.train_cfg),
                                          f'aux_{i}'))
        elif self.auxiliary_head is not None:
            losses.update(_add_prefix(
                self.auxiliary_head.loss(feats, data_samples, self.train_cfg), 'aux'))
        return losses

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict[str, Tensor]:
        """Losses against each sample's binary ``gt_sem_seg``."""
        return self.head_losses(self.extract_feat(inputs), data_samples)

    def predict(self, inputs: Tensor, data_samples: OptSampleList = None) -> SampleList:
        """Binary change prediction at each sample's ``ori_shape``."""
        seg_logits = self.inference(inputs, self.batch_img_metas(inputs, data_samples))
        return self.postprocess_result(seg_logits, data_samples)

    def _forward(self, inputs: Tensor, data_samples: OptSampleList = None) -> Tensor:
        """Decode-head logits at the head's own resolution."""
        return self.decode_head.forward(self.extract_feat(inputs))
