"""Test-time flips recorded in the metainfo are undone for every direction the transforms use."""
import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmrs.registry import MODELS
from mmrs.utils import register_all_modules

from .test_multiband_end_to_end import REPO_ROOT


@pytest.fixture(scope='module')
def detector():
    register_all_modules()
    cfg = Config.fromfile(str(REPO_ROOT / 'configs/_base_/models/fc_siam_diff.py'))
    return MODELS.build(cfg.model)


@pytest.mark.parametrize('direction,dims', [('horizontal', (2, )), ('vertical', (1, )),
                                            ('diagonal', (1, 2))])
def test_flip_is_undone(detector, direction: str, dims: tuple[int, ...]) -> None:
    logits = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(2, 4, 6)
    meta = dict(img_shape=(4, 6), ori_shape=(4, 6), flip=True, flip_direction=direction)
    assert torch.equal(detector.restore_logits(logits, meta), logits.flip(dims=dims))


def test_padding_is_cropped_before_resizing(detector) -> None:
    logits = torch.zeros(2, 8, 8)
    logits[:, :4, :6] = 1.0  # the real image; the rest is padding
    meta = dict(img_shape=(4, 6), ori_shape=(8, 12))
    restored = detector.restore_logits(logits, meta)
    assert restored.shape == (2, 8, 12) and torch.all(restored == 1.0)


def test_unknown_flip_direction_is_an_error(detector) -> None:
    with pytest.raises(ValueError, match='sideways'):
        detector.restore_logits(torch.zeros(2, 4, 4),
                                dict(img_shape=(4, 4), flip=True, flip_direction='sideways'))


# --------------------------------------------------------------------------------------------
# Through the real test pipeline: the prediction of a pixel-wise model must be the same as on
# the untransformed image, whatever padding / flips / quarter turns the pipeline applied.
# --------------------------------------------------------------------------------------------
def pointwise_detector(size_divisor: int = 32):
    """A detector whose "changed" logit at a pixel is date 2's band 0 there (no context).

    Its prediction is known without running it: changed exactly where band 0 of date 2 is
    above 0.5. Any stretch of the padding into the image or a wrongly undone flip moves
    that boundary.
    """
    from mmrs.models.change_detectors import SiameseChangeDetector  # noqa: F401
    register_all_modules()
    cfg = dict(
        type='SiameseChangeDetector',
        data_preprocessor=dict(type='ChangeDataPreprocessor', mean=[0.] * 3, std=[1.] * 3,
                               size_divisor=size_divisor),
        backbone=dict(type='FCSiamEncoder', in_channels=3, channels=(4, 8), num_convs=(1, 1)),
        neck=dict(type='FeatureFusionNeck', policy='abs_diff'),
        decode_head=dict(type='FCSiamDiffHead', in_channels=(4, 8, 8), decoder_channels=(4, 8),
                         num_convs=(2, 1), num_classes=2,
                         loss_decode=dict(type='mmseg.CrossEntropyLoss')))
    model = MODELS.build(cfg).eval()
    model.encode_decode = lambda x, metas: torch.stack(
        [torch.full_like(x[:, 1, 0], 0.5), x[:, 1, 0]], dim=1)
    return model


def boundary_pair(h: int, w: int, seed: int = 0) -> dict:
    """Date 2 with an irregular change region (band 0 > 0.5), as a results dict."""
    rng = np.random.default_rng(seed)
    d1 = rng.random((h, w, 3)).astype(np.float32) * 0.4
    d2 = d1.copy()
    rows, cols = np.mgrid[:h, :w]
    change = (cols < 0.8 * w - rows * 0.3) & (rows > h // 5)
    d2[..., 0] = np.where(change, 0.9, 0.1)
    return dict(img=[d1, d2], img_shape=(h, w), ori_shape=(h, w),
                img_path=[f'a/{h}x{w}.png', f'b/{h}x{w}.png'],
                gt_seg_map=change.astype(np.uint8), seg_fields=['gt_seg_map'])


def predict_through(pipeline: list, results_list: list[dict], model) -> list:
    from mmrs.datasets.transforms import PackChangeInputs
    packed = []
    for results in results_list:
        for t in pipeline:
            results = t(results)
        packed.append(PackChangeInputs()(results))
    data = model.data_preprocessor(dict(inputs=[p['inputs'] for p in packed],
                                        data_samples=[p['data_samples'] for p in packed]),
                                   False)
    with torch.no_grad():
        return model(**data, mode='predict')


def test_paired_pad_in_test_pipeline_is_not_stretched() -> None:
    """250x250 padded to 256 by PairedPad: the 250 px prediction keeps its exact boundary."""
    from mmrs.datasets.transforms import PairedPad
    model = pointwise_detector()
    results = boundary_pair(250, 250)
    expected = results['img'][1][..., 0] > 0.5
    out = predict_through([PairedPad(size_divisor=32)], [results], model)[0]
    assert out.metainfo['img_padding_size'] == (0, 6, 0, 6)
    pred = out.pred_sem_seg.data[0].numpy().astype(bool)
    assert pred.shape == (250, 250)
    np.testing.assert_array_equal(pred, expected)
    # what the old code did (stretch 256 -> 250) moves the boundary visibly
    stretched = torch.nn.functional.interpolate(
        torch.from_numpy(np.pad(expected, ((0, 6), (0, 6))).astype(np.float32))[None, None],
        size=(250, 250), mode='bilinear')[0, 0].numpy() > 0.5
    assert (stretched != expected).sum() > 250


@pytest.mark.parametrize('order', ['flip,rot,pad', 'rot,flip,pad', 'pad,flip,rot',
                                   'flip,flip,rot,pad', 'pad,rot,flip'])
@pytest.mark.parametrize('seed', range(4))
def test_any_order_of_pad_flip_rot_is_undone(order: str, seed: int) -> None:
    from mmrs.datasets.transforms import PairedPad, PairedRandomFlip, PairedRandomRotate90
    np.random.seed(seed)
    steps = dict(flip=lambda: PairedRandomFlip(prob=1.0),
                 rot=lambda: PairedRandomRotate90(prob=1.0),
                 pad=lambda: PairedPad(size=(40, 36)))
    pipeline = [steps[name]() for name in order.split(',')]
    model = pointwise_detector(size_divisor=16)
    batch = [boundary_pair(30, 23, seed), boundary_pair(17, 35, seed + 10)]
    expected = [r['img'][1][..., 0] > 0.5 for r in batch]
    outputs = predict_through(pipeline, batch, model)
    for out, want in zip(outputs, expected):
        np.testing.assert_array_equal(out.pred_sem_seg.data[0].numpy().astype(bool), want)
