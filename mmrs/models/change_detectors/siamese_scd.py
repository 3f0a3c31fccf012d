"""Semantic change detection: binary change head + one semantic head per date.

The layout of open-cd's ``SiamEncoderMultiDecoder`` (``general_scd`` configs) and of the
SECOND baselines: a shared backbone; the binary change head reads the fused pyramid, and a
semantic head per date reads that date's own pyramid. Label handling follows the common
SECOND practice (open-cd's ``reduce_semantic_zero_label``): the semantic heads learn classes
1..K only, so ``label - 1`` is their target and "no change" (0) is ignored; predictions are
mapped back to the dataset convention by ``(argmax + 1) * binary change``.
"""
from collections.abc import Sequence

import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from torch import Tensor

from mmrs.registry import MODELS
from mmrs.utils.typing_utils import (ConfigType, OptConfigType, OptMultiConfig,
                                     OptSampleList, SampleList)
from .siamese import SiameseChangeDetector, _add_prefix

DATES = ('from', 'to')


def semantic_head_target(label: Tensor, ignore_index: int = 255) -> Tensor:
    """Map a SECOND-convention label (0 = no change, 1..K, ``ignore_index``) to head targets.

    Returns ``label - 1`` with unchanged and ignored pixels set to ``ignore_index``, so the
    semantic heads never learn a "no change" class: change vs. no change is the binary
    head's job, and SECOND only annotates land cover inside changed areas.
    """
    target = label.long() - 1
    target[(label == 0) | (label == ignore_index)] = ignore_index
    return target


@MODELS.register_module()
class SiameseSemanticChangeDetector(SiameseChangeDetector):
    """Siamese binary change detection plus per-date semantic segmentation (SCD).

    Training: the binary head is trained on ``gt_sem_seg`` (derived as
    ``gt_sem_seg_from != 0`` when absent), the semantic heads on ``gt_sem_seg_from`` /
    ``gt_sem_seg_to`` through :func:`semantic_head_target`. The losses are reported as
    ``decode.*``, ``sem_from.*`` and ``sem_to.*``; weight them with each head's
    ``loss_decode.loss_weight``.

    Prediction: ``pred_sem_seg`` (binary change), and ``pred_sem_seg_from`` /
    ``pred_sem_seg_to`` = ``(argmax + 1) * change``, i.e. 0 where no change is predicted and
    1..K elsewhere (the label convention). Internally the three logit maps are concatenated
    along channels, so whole and slide inference treat them like one output.

    Args:
        backbone: Backbone config, shared by both dates.
        neck: Fusion neck config for the binary head (``neck(feats1, feats2)``).
        decode_head: Binary change head config.
        semantic_head: Semantic head config with ``num_classes = K`` (the classes without
            "no change", e.g. 6 for SECOND); built twice (one per date) unless shared.
        share_semantic_head: Use one semantic head (same weights) for both dates.
        semantic_neck: Optional single-input neck applied to each date's pyramid before the
            semantic heads (shared by both dates), e.g. ``mmseg.FPN``.
        auxiliary_head: Auxiliary head(s) on the fused features.
        train_cfg: Training config.
        test_cfg: Testing config (see :class:`BaseChangeDetector`).
        data_preprocessor: Data preprocessor config.
        pretrained: Backbone checkpoint.
        init_cfg: Initialisation config.
    """

    def __init__(self,
                 backbone: ConfigType,
                 neck: ConfigType,
                 decode_head: ConfigType,
                 semantic_head: ConfigType,
                 share_semantic_head: bool = False,
                 semantic_neck: OptConfigType = None,
                 auxiliary_head: ConfigType | list[ConfigType] | None = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 pretrained: str | None = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(backbone=backbone, neck=neck, decode_head=decode_head,
                         auxiliary_head=auxiliary_head, train_cfg=train_cfg,
                         test_cfg=test_cfg, data_preprocessor=data_preprocessor,
                         pretrained=pretrained, init_cfg=init_cfg, backbone_input='siamese')
        self.semantic_neck = MODELS.build(semantic_neck) if semantic_neck is not None else None
        self.semantic_head_from = MODELS.build(semantic_head)
        self.share_semantic_head = share_semantic_head
        self.semantic_head_to = (self.semantic_head_from
                                 if share_semantic_head else MODELS.build(semantic_head))
        self.num_semantic_classes = self.semantic_head_from.out_channels

    def _semantic_heads(self) -> tuple:
        return self.semantic_head_from, self.semantic_head_to

    def extract_all_feat(self, inputs: Tensor) -> tuple:
        """Fused features for the binary head and each date's semantic features."""
        feats1, feats2 = self.extract_pair_feat(inputs)
        fused = self.neck(feats1, feats2)
        if self.semantic_neck is not None:
            feats1, feats2 = self.semantic_neck(feats1), self.semantic_neck(feats2)
        return fused, (feats1, feats2)

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict[str, Tensor]:
        """Binary and per-date semantic losses."""
        for sample in data_samples:
            if 'gt_sem_seg' not in sample and 'gt_sem_seg_from' in sample:
                label = sample.gt_sem_seg_from.data
                change = (label != 0).long()
                change[label == 255] = 255
                sample.gt_sem_seg = PixelData(data=change)
        fused, date_feats = self.extract_all_feat(inputs)
        losses = self.head_losses(fused, data_samples)
        for date, head, feats in zip(DATES, self._semantic_heads(), date_feats):
            targets = [
                SegDataSample(
                    metainfo=sample.metainfo,
                    gt_sem_seg=PixelData(data=semantic_head_target(
                        getattr(sample, f'gt_sem_seg_{date}').data, head.ignore_index)))
                for sample in data_samples
            ]
            losses.update(_add_prefix(head.loss(feats, targets, self.train_cfg),
                                      f'sem_{date}'))
        return losses

    def encode_decode(self, inputs: Tensor, batch_img_metas: list[dict]) -> Tensor:
        """Binary, date-1 and date-2 logits concatenated along channels."""
        fused, date_feats = self.extract_all_feat(inputs)
        logits = [self.decode_head.predict(fused, batch_img_metas, self.test_cfg)]
        for head, feats in zip(self._semantic_heads(), date_feats):
            logits.append(head.predict(feats, batch_img_metas, self.test_cfg))
        return torch.cat(logits, dim=1)

    def postprocess_result(self, seg_logits: Tensor,
                           data_samples: OptSampleList = None) -> SampleList:
        """Binary prediction plus ``pred_sem_seg_from``/``_to`` (0 where no change)."""
        k = self.num_semantic_classes
        change_logits, from_logits, to_logits = seg_logits.split(
            [seg_logits.shape[1] - 2 * k, k, k], dim=1)
        data_samples = super().postprocess_result(change_logits, data_samples)
        for i, sample in enumerate(data_samples):
            change = sample.pred_sem_seg.data
            for date, logits in zip(DATES, (from_logits[i], to_logits[i])):
                logits = self.restore_logits(logits, sample.metainfo)
                pred = (logits.argmax(dim=0, keepdim=True) + 1) * change
                setattr(sample, f'pred_sem_seg_{date}', PixelData(data=pred))
        return data_samples

    def _forward(self, inputs: Tensor,
                 data_samples: OptSampleList = None) -> Sequence[Tensor]:
        """``(change_logits, from_logits, to_logits)`` at the heads' resolution."""
        fused, date_feats = self.extract_all_feat(inputs)
        return (self.decode_head.forward(fused),
                *(head.forward(f) for head, f in zip(self._semantic_heads(), date_feats)))
