"""ChangeMamba's three detectors: MambaBCD, MambaSCD (semantic CD) and MambaBDA (building damage).

Chen et al., "ChangeMamba: Remote Sensing Change Detection With Spatiotemporal State Space
Model", IEEE TGRS 2024 (arXiv:2404.03425); github.com/ChenHongruixuan/MambaCD,
``changedetection/models/{MambaBCD,STMambaSCD,STMambaBDA}.py`` and the losses of
``changedetection/script/train_Mamba{BCD,SCD,BDA}.py``. All three share one VMamba encoder for
both dates; what differs is the set of decoders:

- MambaBCD: the spatio-temporal change decoder (:class:`~mmrs.models.decode_heads.MambaBCDHead`).
- MambaSCD: that change decoder (2 classes) plus one semantic decoder per date
  (:class:`~mmrs.models.decode_heads.MambaSemanticHead`) whose classifier is *shared*
  (official ``aux_clf``). Semantic targets keep the dataset's class indices with "no change"
  (0) ignored, so the semantic heads have K + 1 outputs (7 for SECOND) as in the official model;
  the total loss adds the similarity loss (:class:`~mmrs.models.losses.SemanticConsistencyLoss`).
- MambaBDA: the change decoder on (pre, post) predicts damage (background + 4 grades), a semantic
  decoder on the *pre-disaster* image predicts building localisation.

Every detector has ``scan_backend``: one knob for the selective scan of the encoder *and* of the
decoders' VSS blocks (:func:`~mmrs.models.backbones.vmamba.set_scan_backend`); ``None`` leaves
each layer as its own config built it.
"""
from collections.abc import Sequence

import torch
from mmengine.structures import PixelData
from mmseg.models.utils import resize
from mmseg.structures import SegDataSample
from torch import Tensor

from mmrs.registry import MODELS
from mmrs.utils.typing_utils import ConfigType, OptConfigType, OptSampleList, SampleList
from ..backbones.vmamba import set_scan_backend
from .base import BaseChangeDetector
from .siamese import SiameseChangeDetector, _add_prefix
from .siamese_scd import DATES, SiameseSemanticChangeDetector

#: Official ``STMambaSCD`` key prefixes -> mmrs :class:`MambaSCDDetector` prefixes. The shared
#: classifier ``aux_clf`` is one module under two names (both semantic heads' ``conv_seg``).
MAMBASCD_KEY_MAP: dict[str, tuple[str, ...]] = {
    'encoder.': ('backbone.', ),
    'decoder_bcd.': ('decode_head.', ),
    'main_clf_cd.': ('decode_head.conv_seg.', ),
    'decoder_T1.': ('semantic_head_from.', ),
    'decoder_T2.': ('semantic_head_to.', ),
    'aux_clf.': ('semantic_head_from.conv_seg.', 'semantic_head_to.conv_seg.'),
}

#: Official ``STMambaBDA`` key prefixes -> mmrs :class:`MambaBDADetector` prefixes.
MAMBABDA_KEY_MAP: dict[str, tuple[str, ...]] = {
    'encoder.': ('backbone.', ),
    'decoder_damage.': ('decode_head.', ),
    'main_clf.': ('decode_head.conv_seg.', ),
    'decoder_building.': ('localization_head.', ),
    'aux_clf.': ('localization_head.conv_seg.', ),
}


def ignore_zero_target(label: Tensor, ignore_index: int = 255) -> Tensor:
    """``label`` with class 0 set to ``ignore_index`` (the official MambaSCD / MambaBDA targets).

    MambaSCD's semantic heads never learn "no change" (``label_clf_t1[label_clf_t1 == 0] = 255``
    in ``train_MambaSCD.py``) and MambaBDA's damage head never learns the background
    (``clf_label[clf_label == 0] = 255`` in the official training loader); both keep the other
    class indices as they are.
    """
    target = label.long().clone()
    target[target == 0] = ignore_index
    return target


def _apply_scan_backend(model: BaseChangeDetector, scan_backend: str | None,
                        chunk_size: int | None) -> None:
    model.scan_backend = scan_backend
    if scan_backend is not None:
        set_scan_backend(model, scan_backend, chunk_size)


def _with_target(samples: SampleList, targets: Sequence[Tensor]) -> list[SegDataSample]:
    return [SegDataSample(metainfo=s.metainfo, gt_sem_seg=PixelData(data=t))
            for s, t in zip(samples, targets)]


@MODELS.register_module()
class MambaBCDDetector(SiameseChangeDetector):
    """MambaBCD: :class:`SiameseChangeDetector` with one ``scan_backend`` for the whole model.

    Args:
        scan_backend: ``'auto'``, ``'torch'`` or ``'cuda'`` for every SS2D layer (encoder and
            decoder); ``None`` keeps the layers' own settings.
        scan_chunk_size: Chunk length of the portable scan for every SS2D (``None``: keep).
        **kwargs: :class:`SiameseChangeDetector` arguments.
    """

    def __init__(self, *args, scan_backend: str | None = None,
                 scan_chunk_size: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _apply_scan_backend(self, scan_backend, scan_chunk_size)


@MODELS.register_module()
class MambaSCDDetector(SiameseSemanticChangeDetector):
    """MambaSCD: change decoder + two semantic decoders with one shared classifier.

    Training (official ``train_MambaSCD.py``): the change head on ``gt_sem_seg`` (derived from
    ``gt_sem_seg_from`` when absent), each semantic head on its date's map with 0 ignored
    (:func:`ignore_zero_target`), and the similarity loss between the two dates' softmax maps
    where the date-1 target is ignored, at the label resolution. With the official weights
    (head ``loss_weight`` s: change CE 1 + Lovász 0.75, each semantic CE 0.5 + Lovász 0.375,
    similarity 0.25) the sum of the reported losses is the official total
    ``ce_cd + 0.5 (ce_t1 + ce_t2 + 0.5 sim) + 0.75 (lov_cd + 0.5 (lov_t1 + lov_t2))``.

    Prediction: ``pred_sem_seg`` (binary change), ``pred_sem_seg_from`` / ``pred_sem_seg_to``
    = ``(argmax over the classes 1..K + 1) * change``, i.e. the dataset convention that
    :class:`~mmrs.evaluation.SCDMetric` reads. The official inference takes the argmax over all
    K + 1 outputs; the "no change" output is never trained, and where it wins in a changed pixel
    the official from-to evaluation drops the pixel while SCDMetric rejects it, so it is left
    out of the argmax (identical predictions wherever the official one is a valid class).

    Args:
        semantic_head: Config of the semantic heads, ``num_classes = K + 1`` ("no change"
            included, never trained; 7 for SECOND).
        share_semantic_classifier: One classifier (``conv_seg``) for both semantic heads, as the
            official ``aux_clf``; the state dict lists it under both heads.
        consistency_loss: Config of the similarity loss; ``None`` disables it.
        scan_backend: See :class:`MambaBCDDetector`.
        scan_chunk_size: See :class:`MambaBCDDetector`.
        **kwargs: :class:`SiameseSemanticChangeDetector` arguments.

    Attributes:
        num_semantic_classes: K, the land-cover classes (the heads' outputs minus "no change").
    """

    def __init__(self, *args, share_semantic_classifier: bool = True,
                 consistency_loss: OptConfigType = dict(
                     type='SemanticConsistencyLoss', loss_weight=0.25),
                 scan_backend: str | None = None, scan_chunk_size: int | None = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.share_semantic_classifier = share_semantic_classifier
        if share_semantic_classifier and not self.share_semantic_head:
            self.semantic_head_to.conv_seg = self.semantic_head_from.conv_seg
        self.num_semantic_classes = self.semantic_head_from.out_channels - 1
        self.consistency_loss = (MODELS.build(consistency_loss)
                                 if consistency_loss is not None else None)
        _apply_scan_backend(self, scan_backend, scan_chunk_size)

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict[str, Tensor]:
        """Change, per-date semantic and similarity losses (``decode.*``, ``sem_*``)."""
        for sample in data_samples:
            if 'gt_sem_seg' not in sample and 'gt_sem_seg_from' in sample:
                label = sample.gt_sem_seg_from.data
                change = (label != 0).long()
                change[label == 255] = 255
                sample.gt_sem_seg = PixelData(data=change)
        fused, date_feats = self.extract_all_feat(inputs)
        losses = self.head_losses(fused, data_samples)
        logits, targets = [], []
        for date, head, feats in zip(DATES, self._semantic_heads(), date_feats):
            target = [ignore_zero_target(getattr(s, f'gt_sem_seg_{date}').data, head.ignore_index)
                      for s in data_samples]
            logits.append(head.forward(feats))
            targets.append(target)
            losses.update(_add_prefix(
                head.loss_by_feat(logits[-1], _with_target(data_samples, target)),
                f'sem_{date}'))
        if self.consistency_loss is not None:
            head = self.semantic_head_from
            target_from = torch.stack(targets[0])[:, 0]  # (B, H, W)
            a, b = (resize(x, size=target_from.shape[-2:], mode='bilinear',
                           align_corners=head.align_corners) for x in logits)
            losses[f'sem.{self.consistency_loss.loss_name}'] = self.consistency_loss(
                a, b, target_from == head.ignore_index)
        return losses

    def postprocess_result(self, seg_logits: Tensor,
                           data_samples: OptSampleList = None) -> SampleList:
        """``pred_sem_seg`` plus ``pred_sem_seg_from/_to = (argmax_{1..K} + 1) * change``."""
        k = self.num_semantic_classes + 1
        change_logits, from_logits, to_logits = seg_logits.split(
            [seg_logits.shape[1] - 2 * k, k, k], dim=1)
        data_samples = BaseChangeDetector.postprocess_result(self, change_logits, data_samples)
        for i, sample in enumerate(data_samples):
            change = sample.pred_sem_seg.data
            for date, logits in zip(DATES, (from_logits[i], to_logits[i])):
                logits = self.restore_logits(logits, sample.metainfo)
                pred = (logits[1:].argmax(dim=0, keepdim=True) + 1) * change
                setattr(sample, f'pred_sem_seg_{date}', PixelData(data=pred))
        return data_samples


@MODELS.register_module()
class MambaBDADetector(SiameseChangeDetector):
    """MambaBDA: building localisation on the pre-image + damage grading on the pair.

    Training (official ``train_MambaBDA.py``): the damage head (``decode_head``, the change
    decoder, background + 4 grades) on ``gt_damage_seg`` with the background ignored
    (``ignore_damage_background``, :func:`ignore_zero_target`), the localisation head
    (``localization_head``, semantic decoder on the pre-disaster pyramid, 2 classes) on
    ``gt_sem_seg``. Official weights: localisation CE 1 + Lovász 0.5, damage CE 1 + Lovász 0.75.
    The official loop also skips batches without any valid damage pixel; here such a batch
    gives a zero damage loss and still trains the localisation.

    Prediction: ``pred_sem_seg`` (localisation 0/1, its logits in ``seg_logits``),
    ``pred_damage_seg`` (argmax of the damage logits, 0..4, logits in ``damage_logits``). As in
    the official evaluation the damage map is not masked by the localisation, unless
    ``mask_damage_by_localization`` (the official inference *maps*: damage 0 off buildings).

    Args:
        backbone: Backbone config (VMamba).
        neck: Fusion neck of the damage head (``FeatureFusionNeck``, ``policy='concat'``).
        decode_head: Damage head config (``MambaBCDHead``, ``num_classes=5``).
        localization_head: Localisation head config (``MambaSemanticHead``, ``num_classes=2``).
        ignore_damage_background: Ignore damage class 0 in the damage loss (official).
        mask_damage_by_localization: Set ``pred_damage_seg`` to 0 where no building is predicted.
        scan_backend: See :class:`MambaBCDDetector`.
        scan_chunk_size: See :class:`MambaBCDDetector`.
        **kwargs: :class:`SiameseChangeDetector` arguments (``auxiliary_head`` heads read the
            fused features and train on the damage targets).
    """

    def __init__(self, backbone: ConfigType, neck: ConfigType, decode_head: ConfigType,
                 localization_head: ConfigType, ignore_damage_background: bool = True,
                 mask_damage_by_localization: bool = False, scan_backend: str | None = None,
                 scan_chunk_size: int | None = None, **kwargs) -> None:
        super().__init__(backbone=backbone, neck=neck, decode_head=decode_head, **kwargs)
        if self.backbone_input != 'siamese':
            raise ValueError('MambaBDADetector needs backbone_input="siamese" (the localisation '
                             'head reads the pre-disaster pyramid)')
        self.localization_head = MODELS.build(localization_head)
        self.ignore_damage_background = ignore_damage_background
        self.mask_damage_by_localization = mask_damage_by_localization
        _apply_scan_backend(self, scan_backend, scan_chunk_size)

    def _damage_targets(self, data_samples: SampleList) -> list[Tensor]:
        targets = []
        for i, sample in enumerate(data_samples):
            if 'gt_damage_seg' not in sample:
                raise KeyError(f'MambaBDADetector: sample {i} ({sample.metainfo.get("img_path")}) '
                               'has no gt_damage_seg (damage grades 0..4, 255 ignored); load it '
                               'with the xBD dataset pipeline')
            label = sample.gt_damage_seg.data
            targets.append(ignore_zero_target(label, self.decode_head.ignore_index)
                           if self.ignore_damage_background else label.long())
        return targets

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict[str, Tensor]:
        """Damage (``decode.*``, ``aux*``) and localisation (``loc.*``) losses."""
        damage = _with_target(data_samples, self._damage_targets(data_samples))
        feats1, feats2 = self.extract_pair_feat(inputs)
        losses = self.head_losses(self.neck(feats1, feats2), damage)
        losses.update(_add_prefix(
            self.localization_head.loss(feats1, data_samples, self.train_cfg), 'loc'))
        return losses

    def encode_decode(self, inputs: Tensor, batch_img_metas: list[dict]) -> Tensor:
        """Damage and localisation logits concatenated along channels (input size)."""
        feats1, feats2 = self.extract_pair_feat(inputs)
        damage = self.decode_head.predict(self.neck(feats1, feats2), batch_img_metas,
                                          self.test_cfg)
        loc = self.localization_head.predict(feats1, batch_img_metas, self.test_cfg)
        return torch.cat([damage, loc], dim=1)

    def postprocess_result(self, seg_logits: Tensor,
                           data_samples: OptSampleList = None) -> SampleList:
        """``pred_sem_seg`` (localisation) and ``pred_damage_seg`` (damage grade)."""
        damage_logits, loc_logits = seg_logits.split(
            [self.decode_head.out_channels, self.localization_head.out_channels], dim=1)
        data_samples = super().postprocess_result(loc_logits, data_samples)
        for i, sample in enumerate(data_samples):
            logits = self.restore_logits(damage_logits[i], sample.metainfo)
            pred = logits.argmax(dim=0, keepdim=True)
            if self.mask_damage_by_localization:
                pred = pred * (sample.pred_sem_seg.data != 0)
            sample.set_data(dict(damage_logits=PixelData(data=logits),
                                 pred_damage_seg=PixelData(data=pred)))
        return data_samples

    def _forward(self, inputs: Tensor, data_samples: OptSampleList = None) -> tuple[Tensor, ...]:
        """``(damage_logits, localisation_logits)`` at the heads' resolution (stride 4)."""
        feats1, feats2 = self.extract_pair_feat(inputs)
        return (self.decode_head.forward(self.neck(feats1, feats2)),
                self.localization_head.forward(feats1))
