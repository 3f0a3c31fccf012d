"""Metrics compare prediction and ground truth at the original size (mmseg's rule).

Batches mix sizes that are no multiple of the preprocessor's ``size_divisor`` (250x250 and
256x200 with ``size_divisor=32``); predictions come from a real detector's predict mode, and
the expected confusion counts are taken by hand with numpy from the untouched label arrays.
"""
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData

from mmrs.datasets.transforms import (LoadChangeAnnotations, PackChangeInputs, PairedPad,
                                      PairedRandomFlip, PairedRandomRotate90, PairedResize)
from mmrs.evaluation import ChangeMetric, SCDMetric
from mmrs.registry import MODELS
from mmrs.structures import ChangeDataSample, restore_label_map
from mmrs.utils import register_all_modules

torch.set_num_threads(2)
SIZES = [(250, 250), (256, 200)]
K = 3  # land-cover classes of the semantic model

BACKBONE = dict(type='FCSiamEncoder', in_channels=3, channels=(4, 8), num_convs=(1, 1))
HEAD = dict(type='FCSiamDiffHead', in_channels=(4, 8, 8), decoder_channels=(4, 8),
            num_convs=(2, 1), num_classes=2, loss_decode=dict(type='mmseg.CrossEntropyLoss'))
PRE = dict(type='ChangeDataPreprocessor', mean=[0.5] * 3, std=[0.25] * 3, size_divisor=32)


def build(semantic: bool):
    register_all_modules()
    cfg = dict(type='SiameseChangeDetector', backbone=BACKBONE,
               neck=dict(type='FeatureFusionNeck', policy='abs_diff'), decode_head=HEAD,
               data_preprocessor=PRE)
    if semantic:
        cfg.update(type='SiameseSemanticChangeDetector',
                   neck=dict(type='FeatureFusionNeck', policy='diff'),
                   semantic_head=dict(type='mmseg.FCNHead', in_channels=8, in_index=1,
                                      channels=4, num_convs=1, num_classes=K,
                                      loss_decode=dict(type='mmseg.CrossEntropyLoss')))
    torch.manual_seed(0)
    return MODELS.build(cfg).eval()


def labelled_batch(semantic: bool, seed: int = 0) -> tuple[dict, list[dict]]:
    """A mixed-size batch and, per sample, the original label arrays (numpy)."""
    rng = np.random.default_rng(seed)
    inputs, samples, labels = [], [], []
    for i, (h, w) in enumerate(SIZES):
        inputs.append(torch.from_numpy(rng.random((2, 3, h, w)).astype(np.float32)))
        change = (rng.random((h, w)) < 0.3).astype(np.int64)
        change[:5] = 255
        maps = dict(gt_sem_seg=change)
        if semantic:
            frm = rng.integers(1, K + 1, (h, w)) * (change == 1)
            to = rng.integers(1, K + 1, (h, w)) * (change == 1)
            frm[change == 255] = to[change == 255] = 255
            maps.update(gt_sem_seg_from=frm, gt_sem_seg_to=to)
        sample = ChangeDataSample(metainfo=dict(
            ori_shape=(h, w), img_shape=(h, w), sample_idx=i,
            img_path=[f'A/{i}.png', f'B/{i}.png'], transformed_gt_fields=()))
        for key, value in maps.items():
            setattr(sample, key, PixelData(data=torch.from_numpy(value)[None]))
        samples.append(sample)
        labels.append(maps)
    return dict(inputs=inputs, data_samples=samples), labels


def predict(model, batch: dict) -> list[ChangeDataSample]:
    data = model.data_preprocessor(batch, False)
    with torch.no_grad():
        return model(**data, mode='predict')


def hand_confusion(preds: list[np.ndarray], gts: list[np.ndarray], n: int) -> np.ndarray:
    """cm[g, p] counted pixel by pixel over non-ignored ground truth."""
    cm = np.zeros((n, n), np.int64)
    for p, g in zip(preds, gts):
        keep = g != 255
        for gv, pv in zip(g[keep].ravel(), p[keep].ravel()):
            cm[gv, pv] += 1
    return cm


def test_change_metric_on_mixed_size_eval_batch() -> None:
    model = build(semantic=False)
    batch, labels = labelled_batch(semantic=False)
    outputs = predict(model, batch)
    preds = [o.pred_sem_seg.data[0].numpy() for o in outputs]
    assert [p.shape for p in preds] == SIZES
    metric = ChangeMetric()
    metric.process({}, [o.to_dict() for o in outputs])
    result = metric.evaluate(len(outputs))
    (tn, fp), (fn, tp) = hand_confusion(preds, [m['gt_sem_seg'] for m in labels], 2)
    assert tp > 0 and fp > 0 and fn > 0 and tn > 0
    assert result['f1'] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert result['oa'] == pytest.approx((tp + tn) / (tp + tn + fp + fn))
    assert result['iou'] == pytest.approx(tp / (tp + fp + fn))


def test_scd_metric_on_mixed_size_eval_batch() -> None:
    model = build(semantic=True)
    batch, labels = labelled_batch(semantic=True, seed=1)
    outputs = predict(model, batch)
    metric = SCDMetric(num_semantic_classes=K + 1)
    metric.process({}, [o.to_dict() for o in outputs])
    result = metric.evaluate(len(outputs))
    binary = hand_confusion([o.pred_sem_seg.data[0].numpy() for o in outputs],
                            [m['gt_sem_seg'] for m in labels], 2)
    semantic = np.zeros((K + 1, K + 1), np.int64)
    for o, m in zip(outputs, labels):
        assert tuple(o.pred_sem_seg_from.data.shape[-2:]) == m['gt_sem_seg'].shape
        for date in ('from', 'to'):
            semantic += hand_confusion([getattr(o, f'pred_sem_seg_{date}').data[0].numpy()],
                                       [m[f'gt_sem_seg_{date}']], K + 1)
    (tn, fp), (fn, tp) = binary
    assert result['binary/f1'] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    # SECOND Fscd from the hand-counted semantic matrix (rows gt, columns prediction)
    correct = np.trace(semantic[1:, 1:])
    psc, rsc = correct / semantic[:, 1:].sum(), correct / semantic[1:, :].sum()
    assert result['Fscd'] == pytest.approx(2 * psc * rsc / (psc + rsc))
    assert result['second/OA'] == pytest.approx(np.trace(semantic) / semantic.sum())


# --------------------------------------------------------------------------------------------
# Ground truth that went through the test pipeline
# --------------------------------------------------------------------------------------------
def pipeline_sample(label: np.ndarray, steps: list, tmp_path) -> ChangeDataSample:
    """Run a real pipeline with the annotations loaded before the geometric steps."""
    import cv2
    h, w = label.shape
    path = str(tmp_path / 'label.png')
    cv2.imwrite(path, (label * 255).astype(np.uint8))
    img = np.zeros((h, w, 3), np.uint8)
    results = dict(img=[img, img.copy()], img_shape=(h, w), ori_shape=(h, w),
                   img_path=['A/x.png', 'B/x.png'], seg_map_path=path, seg_fields=[])
    results = LoadChangeAnnotations()(results)
    for step in steps:
        results = step(results)
    return PackChangeInputs()(results)['data_samples']


@pytest.mark.parametrize('steps', [
    lambda: [PairedPad(size_divisor=32)],
    lambda: [PairedRandomFlip(prob=1.0), PairedRandomRotate90(prob=1.0),
             PairedPad(size=(64, 64))],
    lambda: [PairedPad(size=(40, 48)), PairedRandomRotate90(prob=1.0),
             PairedRandomFlip(prob=1.0)],
], ids=['pad', 'flip-rot-pad', 'pad-rot-flip'])
@pytest.mark.parametrize('seed', range(3))
def test_label_loaded_before_geometry_is_restored(steps, seed, tmp_path) -> None:
    np.random.seed(seed)
    label = (np.random.default_rng(seed).random((30, 23)) < 0.5).astype(np.uint8)
    sample = pipeline_sample(label, steps(), tmp_path)
    assert 'gt_sem_seg' in sample.transformed_gt_fields
    restored = restore_label_map(sample.gt_sem_seg.data, sample.metainfo, label.shape)
    np.testing.assert_array_equal(restored[0].numpy(), label)
    # and ChangeMetric scores a perfect prediction of the original label as perfect
    sample.pred_sem_seg = PixelData(data=torch.from_numpy(label.astype(np.int64))[None])
    metric = ChangeMetric()
    metric.process({}, [sample.to_dict()])
    assert metric.evaluate(1)['f1'] == 1.0 and metric.results == []


def test_resized_label_is_a_clear_error(tmp_path) -> None:
    label = np.zeros((30, 24), np.uint8)
    label[5:9] = 1
    sample = pipeline_sample(label, [PairedResize((48, 60), keep_ratio=False)],
                             tmp_path)
    sample.pred_sem_seg = PixelData(data=torch.zeros(1, 30, 24, dtype=torch.long))
    with pytest.raises(ValueError, match=r"A/x\.png.*load the annotations after the geometric"):
        ChangeMetric().process({}, [sample.to_dict()])


def test_label_without_record_larger_by_recorded_padding_is_cropped() -> None:
    gt = torch.zeros(1, 32, 32, dtype=torch.long)
    gt[:, :30, :23] = 1
    gt[:, 30:] = gt[:, :, 23:] = 255
    meta = dict(img_padding_size=(0, 9, 0, 2))
    assert torch.all(restore_label_map(gt, meta, (30, 23)) == 1)
    with pytest.raises(ValueError, match=r'img_padding_size=\(0, 9, 0, 2\)'):
        restore_label_map(gt, meta, (31, 23), where='img_path=[x]')
    with pytest.raises(ValueError, match=r'32x32 but the prediction .* 30x30'):
        restore_label_map(gt, {}, (30, 30))
