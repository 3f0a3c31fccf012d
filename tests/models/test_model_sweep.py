"""timm-style sweep: every registered change detector, built from its base config.

Each ``configs/_base_/models/*.py`` whose model is a :class:`BaseChangeDetector` is built
with random weights and run on a tiny batch: a training step (finite loss, a finite gradient
for every trainable parameter) and batched prediction on samples of different sizes (binary
predictions at ``ori_shape``). A detector registered without a config fails
:func:`test_every_detector_has_a_config`, so new models are covered the moment they land.
"""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.structures import PixelData

import mmrs.models  # noqa: F401  (fills the registry)
from mmrs.models.change_detectors import BaseChangeDetector
from mmrs.registry import MODELS
from mmrs.structures import ChangeDataSample

torch.set_num_threads(2)

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'configs' / '_base_' / 'models'
#: Config overrides that make a model small enough for the sweep, by config file name
#: (merged with ``Config.merge_from_dict``). The ResNet-18 configs are small enough as is.
TINY_OVERRIDES: dict[str, dict] = {}
TRAIN_SIZE = (64, 64)
PREDICT_SIZES = [(64, 64), (48, 56)]


def _model_class(cfg: Config) -> type | None:
    """The config's model class if it is a change detector (other models are not swept)."""
    model = cfg.get('model')
    model_type = model.get('type') if isinstance(model, dict) else None
    if not isinstance(model_type, str):
        return None
    try:
        cls = MODELS.get(model_type)
    except Exception:  # noqa: BLE001  (e.g. a scope whose package is not installed)
        return None
    return cls if isinstance(cls, type) and issubclass(cls, BaseChangeDetector) else None


def detector_configs() -> tuple[dict[str, Config], dict[str, str]]:
    """Base model configs whose model is a change detector, and the files that fail to load.

    Load errors are collected rather than raised, so one broken config fails
    :func:`test_configs_load` instead of the collection of the whole sweep.
    """
    configs, errors = {}, {}
    for path in sorted(CONFIG_DIR.glob('*.py')):
        try:
            cfg = Config.fromfile(str(path))
        except Exception as exc:  # noqa: BLE001  (reported by test_configs_load)
            errors[path.name] = f'{type(exc).__name__}: {exc}'
            continue
        if _model_class(cfg) is not None:
            configs[path.name] = cfg
    return configs, errors


CONFIGS, LOAD_ERRORS = detector_configs()


def build_tiny(name: str) -> BaseChangeDetector:
    cfg = copy.deepcopy(CONFIGS[name])
    cfg.merge_from_dict(TINY_OVERRIDES.get(name, {}))
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


def num_bands(cfg: Config) -> int:
    bands = cfg.model.backbone.get('in_channels', 3)
    return bands // 2 if cfg.model.get('backbone_input') == 'concat' else bands


def make_batch(sizes, bands: int, num_semantic: int) -> dict:
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for h, w in sizes:
        inputs.append(torch.randint(0, 256, (2, bands, h, w), generator=g, dtype=torch.uint8))
        frm = torch.randint(0, num_semantic + 1, (1, h, w), generator=g)
        to = torch.where(frm > 0, torch.randint(1, num_semantic + 1, (1, h, w), generator=g), 0)
        change = (frm > 0).long()
        change[:, :4, :4] = 255  # some ignored pixels
        sample = ChangeDataSample(metainfo=dict(ori_shape=(h, w), img_shape=(h, w)))
        sample.gt_sem_seg = PixelData(data=change)
        sample.gt_sem_seg_from = PixelData(data=frm)
        sample.gt_sem_seg_to = PixelData(data=to)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def test_configs_load() -> None:
    assert CONFIGS, f'no change-detector configs found in {CONFIG_DIR}'
    assert not LOAD_ERRORS, f'base model configs that fail to load: {LOAD_ERRORS}'


def test_every_detector_has_a_config() -> None:
    covered = {cfg.model.type for cfg in CONFIGS.values()}
    detectors = {name for name in MODELS.module_dict if name.endswith('ChangeDetector')}
    missing = sorted(detectors - covered)
    assert not missing, (f'registered change detectors without a config in '
                         f'configs/_base_/models/: {missing}')


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_train_step(name: str) -> None:
    model = build_tiny(name)
    model.train()
    num_semantic = getattr(model, 'num_semantic_classes', 6)
    batch = make_batch([TRAIN_SIZE] * 2, num_bands(CONFIGS[name]), num_semantic)
    data = model.data_preprocessor(batch, True)
    assert data['inputs'].shape[:2] == (2, 2)
    losses = model(**data, mode='loss')
    loss_terms = {k: v for k, v in losses.items() if 'loss' in k}
    assert loss_terms, f'{name}: no loss terms in {list(losses)}'
    total = sum(loss_terms.values())
    assert torch.isfinite(total), f'{name}: loss is not finite: {losses}'
    total.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f'{name}: parameters without gradient: {missing[:10]}'
    bad = [n for n, p in model.named_parameters()
           if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, f'{name}: non-finite gradients: {bad[:10]}'


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_batched_predict(name: str) -> None:
    model = build_tiny(name)
    model.eval()
    num_semantic = getattr(model, 'num_semantic_classes', 6)
    batch = make_batch(PREDICT_SIZES, num_bands(CONFIGS[name]), num_semantic)
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        out = model(**data, mode='predict')
    assert len(out) == len(PREDICT_SIZES)
    for sample, size in zip(out, PREDICT_SIZES):
        pred = sample.pred_sem_seg.data
        assert tuple(pred.shape) == (1, *size), f'{name}: {tuple(pred.shape)} != {size}'
        assert set(pred.unique().tolist()) <= {0, 1}
        for field in ('pred_sem_seg_from', 'pred_sem_seg_to'):
            if field in sample:
                semantic = getattr(sample, field).data
                assert tuple(semantic.shape) == (1, *size)
                assert torch.all(semantic[pred == 0] == 0)
