"""Test-time flips recorded in the metainfo are undone for every direction the transforms use."""
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
