"""Tests of the Siamese change detectors: inference modes, post-processing, SCD labels."""
import copy

import pytest
import torch
import torch.nn as nn
from mmengine.structures import PixelData

from mmrs.models.change_detectors import (SiameseChangeDetector,
                                          SiameseSemanticChangeDetector,
                                          semantic_head_target)
from mmrs.models.data_preprocessors import ChangeDataPreprocessor
from mmrs.registry import MODELS
from mmrs.structures import ChangeDataSample

torch.set_num_threads(2)

TINY_BACKBONE = dict(type='FCSiamEncoder', in_channels=3, channels=(4, 8), num_convs=(1, 1),
                     dropout=0.0)
TINY_HEAD = dict(type='FCSiamDiffHead', in_channels=(4, 8, 8), decoder_channels=(4, 8),
                 num_convs=(2, 1), num_classes=2,
                 loss_decode=dict(type='mmseg.CrossEntropyLoss'))
PREPROCESSOR = dict(type='ChangeDataPreprocessor', mean=[0.5] * 3, std=[0.25] * 3,
                    size_divisor=8)


def tiny_detector(**kwargs) -> SiameseChangeDetector:
    cfg = dict(type='SiameseChangeDetector', backbone=TINY_BACKBONE,
               neck=dict(type='FeatureFusionNeck', policy='abs_diff'), decode_head=TINY_HEAD,
               data_preprocessor=PREPROCESSOR)
    cfg.update(kwargs)
    torch.manual_seed(0)
    return MODELS.build(copy.deepcopy(cfg))


def make_batch(sizes, semantic_classes: int = 0) -> dict:
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for h, w in sizes:
        inputs.append(torch.rand(2, 3, h, w, generator=g))
        sample = ChangeDataSample(metainfo=dict(ori_shape=(h, w), img_shape=(h, w)))
        if semantic_classes:
            frm = torch.randint(0, semantic_classes + 1, (1, h, w), generator=g)
            to = torch.where(frm > 0, torch.randint(1, semantic_classes + 1, (1, h, w),
                                                    generator=g), 0)
            sample.gt_sem_seg_from = PixelData(data=frm)
            sample.gt_sem_seg_to = PixelData(data=to)
            sample.gt_sem_seg = PixelData(data=(frm > 0).long())
        else:
            sample.gt_sem_seg = PixelData(data=torch.randint(0, 2, (1, h, w), generator=g))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def run(model, batch: dict, mode: str):
    data = model.data_preprocessor(batch, mode == 'loss')
    if mode == 'loss':
        return model(**data, mode='loss')
    model.eval()
    with torch.no_grad():
        return model(**data, mode=mode)


class TestSiameseChangeDetector:

    def test_loss_and_predict_shapes(self) -> None:
        model = tiny_detector()
        losses = run(model, make_batch([(16, 16), (16, 16)]), 'loss')
        assert torch.isfinite(losses['decode.loss_ce'])
        out = run(model, make_batch([(13, 21), (16, 9)]), 'predict')
        assert [tuple(s.pred_sem_seg.shape) for s in out] == [(13, 21), (16, 9)]
        assert [tuple(s.seg_logits.data.shape) for s in out] == [(2, 13, 21), (2, 16, 9)]
        assert out[0].pred_sem_seg.data.dtype == torch.long

    def test_tensor_mode_and_no_samples(self) -> None:
        model = tiny_detector().eval()
        x = torch.rand(2, 2, 3, 16, 16)
        assert model(x, mode='tensor').shape == (2, 2, 16, 16)
        with torch.no_grad():
            out = model(x, mode='predict')
        assert len(out) == 2 and tuple(out[0].pred_sem_seg.shape) == (16, 16)
        with pytest.raises(RuntimeError, match='invalid mode'):
            model(x, mode='train')

    def test_shared_backbone_batching_matches_separate_calls(self) -> None:
        model = tiny_detector().eval()
        x = torch.rand(2, 2, 3, 16, 16)
        f1, f2 = model.extract_pair_feat(x)
        for a, b in zip(f1, model.backbone(x[:, 0])):
            torch.testing.assert_close(a, b)
        for a, b in zip(f2, model.backbone(x[:, 1])):
            torch.testing.assert_close(a, b)

    def test_slide_equals_whole_for_pointwise_model(self) -> None:
        """The window grid, overlap counting and window batching are exact."""
        model = tiny_detector(test_cfg=dict(mode='slide', crop_size=(8, 8), stride=(5, 6),
                                            crop_batch_size=3)).eval()
        conv = nn.Conv2d(6, 3, 1)
        model.encode_decode = lambda x, metas: conv(x.flatten(1, 2))
        x = torch.rand(2, 2, 3, 19, 23)
        metas = model.batch_img_metas(x, None)
        with torch.no_grad():
            torch.testing.assert_close(model.slide_inference(x, metas),
                                       model.whole_inference(x, metas))

    def test_slide_real_model(self) -> None:
        model = tiny_detector(test_cfg=dict(mode='slide', crop_size=16, stride=8))
        out = run(model, make_batch([(27, 30), (20, 12)]), 'predict')
        assert [tuple(s.pred_sem_seg.shape) for s in out] == [(27, 30), (20, 12)]
        x = torch.rand(1, 2, 3, 24, 40)
        metas = model.batch_img_metas(x, None)
        with torch.no_grad():
            one = model.slide_inference(x, metas)
            model.test_cfg.crop_batch_size = 4
            torch.testing.assert_close(model.slide_inference(x, metas), one)
        assert one.shape == (1, 2, 24, 40) and torch.isfinite(one).all()

    def test_sigmoid_single_channel(self) -> None:
        head = dict(TINY_HEAD, out_channels=1, threshold=0.4,
                    loss_decode=dict(type='mmseg.CrossEntropyLoss', use_sigmoid=True))
        model = tiny_detector(decode_head=head)
        assert torch.isfinite(run(model, make_batch([(16, 16)] * 2), 'loss')['decode.loss_ce'])
        out = run(model, make_batch([(16, 16)]), 'predict')[0]
        logits = out.seg_logits.data
        assert logits.shape == (1, 16, 16) and model.threshold == 0.4
        assert torch.equal(out.pred_sem_seg.data, (logits.sigmoid() > 0.4).long())
        model.test_cfg.threshold = 0.0
        out = run(model, make_batch([(16, 16)]), 'predict')[0]
        assert torch.all(out.pred_sem_seg.data == 1)

    def test_postprocess_crops_padding_and_resizes(self) -> None:
        model = tiny_detector()
        logits = torch.zeros(1, 2, 8, 8)
        logits[:, 1, :5, :6] = 1.  # valid area says "change", padding says "no change"
        sample = ChangeDataSample(metainfo=dict(img_shape=(5, 6), ori_shape=(5, 6)))
        out = model.postprocess_result(logits, [sample])[0]
        assert out.seg_logits.data.shape == (2, 5, 6)
        assert torch.all(out.pred_sem_seg.data == 1)
        sample = ChangeDataSample(metainfo=dict(img_shape=(5, 6), ori_shape=(10, 12)))
        out = model.postprocess_result(logits, [sample])[0]
        assert tuple(out.pred_sem_seg.shape) == (10, 12)
        assert torch.all(out.pred_sem_seg.data == 1)

    def test_postprocess_undoes_flip(self) -> None:
        model = tiny_detector()
        logits = torch.zeros(1, 2, 4, 4)
        logits[:, 1, :, 0] = 1.
        sample = ChangeDataSample(metainfo=dict(img_shape=(4, 4), ori_shape=(4, 4), flip=True,
                                                flip_direction='horizontal'))
        pred = model.postprocess_result(logits, [sample])[0].pred_sem_seg.data
        assert torch.all(pred[0, :, 3] == 1) and torch.all(pred[0, :, :3] == 0)

    def test_early_fusion_concat(self) -> None:
        """FC-EF: both dates as 2C channels into one encoder, no fusion neck."""
        head = dict(TINY_HEAD, in_channels=(4, 8, 8))
        model = tiny_detector(backbone=dict(TINY_BACKBONE, in_channels=6), neck=None,
                              decode_head=head, backbone_input='concat')
        assert torch.isfinite(run(model, make_batch([(16, 16)] * 2), 'loss')['decode.loss_ce'])

    def test_dual_input_backbone(self) -> None:

        class DualBackbone(nn.Module):

            def __init__(self, inner: nn.Module) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, x1, x2):
                return self.inner(x1), self.inner(x2)

        model = tiny_detector(backbone_input='dual')
        model.backbone = DualBackbone(model.backbone)
        model.eval()
        x = torch.rand(1, 2, 3, 16, 16)
        reference = tiny_detector().eval()
        torch.testing.assert_close(model(x), reference(x))

    def test_invalid_configs(self) -> None:
        with pytest.raises(ValueError, match='needs a neck'):
            tiny_detector(neck=None)
        with pytest.raises(ValueError, match='backbone_input'):
            tiny_detector(backbone_input='late')
        model = tiny_detector(test_cfg=dict(mode='tiles'))
        with pytest.raises(ValueError, match='test mode'):
            model.inference(torch.rand(1, 2, 3, 8, 8), [dict()])
        model = tiny_detector(test_cfg=dict(mode='slide'))
        with pytest.raises(ValueError, match='crop_size and stride'):
            model.inference(torch.rand(1, 2, 3, 8, 8), [dict()])

    def test_default_preprocessor(self) -> None:
        model = tiny_detector(data_preprocessor=None)
        assert isinstance(model.data_preprocessor, ChangeDataPreprocessor)
        out = run(model, make_batch([(12, 16), (16, 9)]), 'predict')
        assert [tuple(s.pred_sem_seg.shape) for s in out] == [(12, 16), (16, 9)]

    def test_auxiliary_heads(self) -> None:
        aux = dict(type='mmseg.FCNHead', in_channels=8, in_index=2, channels=4, num_convs=1,
                   num_classes=2, loss_decode=dict(type='mmseg.CrossEntropyLoss',
                                                   loss_weight=0.4))
        losses = run(tiny_detector(auxiliary_head=[aux, aux]),
                     make_batch([(16, 16)] * 2), 'loss')
        assert {'aux_0.loss_ce', 'aux_1.loss_ce'} <= set(losses)
        losses = run(tiny_detector(auxiliary_head=aux), make_batch([(16, 16)] * 2), 'loss')
        assert 'aux.loss_ce' in losses


def tiny_scd(**kwargs) -> SiameseSemanticChangeDetector:
    semantic = dict(type='mmseg.FCNHead', in_channels=8, in_index=1, channels=4, num_convs=1,
                    num_classes=3, loss_decode=dict(type='mmseg.CrossEntropyLoss'))
    cfg = dict(type='SiameseSemanticChangeDetector', backbone=TINY_BACKBONE,
               neck=dict(type='FeatureFusionNeck', policy='diff'), decode_head=TINY_HEAD,
               semantic_head=semantic, data_preprocessor=PREPROCESSOR)
    cfg.update(kwargs)
    torch.manual_seed(0)
    return MODELS.build(cfg)


class TestSiameseSemanticChangeDetector:

    def test_semantic_head_target(self) -> None:
        label = torch.tensor([[0, 1, 2, 6, 255]])
        assert semantic_head_target(label).tolist() == [[255, 0, 1, 5, 255]]

    def test_losses(self) -> None:
        losses = run(tiny_scd(), make_batch([(16, 16)] * 2, semantic_classes=3), 'loss')
        for key in ('decode.loss_ce', 'sem_from.loss_ce', 'sem_to.loss_ce'):
            assert torch.isfinite(losses[key])

    def test_all_unchanged_batch_is_finite(self) -> None:
        batch = make_batch([(16, 16)] * 2, semantic_classes=3)
        for s in batch['data_samples']:
            s.gt_sem_seg_from.data.zero_()
            s.gt_sem_seg_to.data.zero_()
            del s.gt_sem_seg  # derived from gt_sem_seg_from
        model = tiny_scd()
        losses = run(model, batch, 'loss')
        assert all(torch.isfinite(v) for v in losses.values())
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        assert model.semantic_head_to.conv_seg.weight.grad is not None

    def test_predictions_follow_label_convention(self) -> None:
        model = tiny_scd()
        out = run(model, make_batch([(13, 16), (16, 11)], semantic_classes=3), 'predict')
        for s, shape in zip(out, [(13, 16), (16, 11)]):
            change = s.pred_sem_seg.data
            for pred in (s.pred_sem_seg_from.data, s.pred_sem_seg_to.data):
                assert pred.shape == (1, *shape)
                assert torch.all(pred[change == 0] == 0)
                assert torch.all((pred[change == 1] >= 1) & (pred[change == 1] <= 3))

    def test_slide_inference(self) -> None:
        model = tiny_scd(test_cfg=dict(mode='slide', crop_size=8, stride=6))
        out = run(model, make_batch([(13, 20)], semantic_classes=3), 'predict')[0]
        assert tuple(out.pred_sem_seg_to.shape) == (13, 20)

    def test_shared_semantic_head(self) -> None:
        separate, shared = tiny_scd(), tiny_scd(share_semantic_head=True)
        assert separate.semantic_head_from is not separate.semantic_head_to
        assert shared.semantic_head_from is shared.semantic_head_to
        n_separate = sum(p.numel() for p in separate.parameters())
        n_shared = sum(p.numel() for p in shared.parameters())
        assert n_separate - n_shared == sum(
            p.numel() for p in shared.semantic_head_from.parameters())
        change, frm, to = shared(torch.rand(1, 2, 3, 16, 16))
        assert frm.shape == to.shape == (1, 3, 8, 8)
