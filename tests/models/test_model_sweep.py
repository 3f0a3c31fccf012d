"""timm-style sweep: every registered change detector, built from its base config.

Each ``configs/_base_/models/*.py`` whose model is a :class:`BaseChangeDetector` is built
with random weights, shrunk by its entry in :data:`TINY_OVERRIDES` (narrower layers, same
architecture), and run on a tiny batch: a training step (finite loss, a finite gradient for
every trainable parameter) and batched prediction on samples of different sizes (binary
predictions at ``ori_shape``). A detector registered without a config fails
:func:`test_every_detector_has_a_config`, and a config without a tiny setting that really
shrinks it fails :func:`test_tiny_overrides_shrink_the_model`, so new models are covered
the moment they land.
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
_R18_TINY = {  # ResNet-18 with 8 base channels: stages of 8, 16, 32, 64 channels
    'model.backbone.stem_channels': 8,
    'model.backbone.base_channels': 8,
}
_UPER_TINY = {'in_channels': [8, 16, 32, 64], 'channels': 16}

#: Config overrides (``Config.merge_from_dict`` keys) that make each model small enough for
#: the sweep, by config file name. Every swept config needs one, and it must shrink the
#: parameter count by at least :data:`MIN_SHRINK` (checked), so the sweep stays fast.
TINY_OVERRIDES: dict[str, dict] = {
    'btc_r18_upernet.py': {
        **_R18_TINY,
        'model.neck.in_channels': [8, 16, 32, 64],
        **{f'model.decode_head.{k}': v for k, v in _UPER_TINY.items()},
    },
    'btc_r18_fpn.py': {
        **_R18_TINY,
        'model.neck.necks.1.in_channels': [8, 16, 32, 64],
        'model.neck.necks.1.out_channels': 16,
        'model.decode_head.in_channels': [16] * 4,
        'model.decode_head.channels': 16,
    },
    'changevit.py': {  # ResNet widths 8/16/32, a 32-wide ViT (12 blocks, as the full one)
        'model.backbone.detail_base_channels': 8,
        'model.backbone.vit.embed_dims': 32,
        'model.backbone.vit.num_heads': 4,
        'model.decode_head.in_channels': [8, 16, 32, 32],
    },
    'fc_siam_diff.py': {
        'model.backbone.channels': (4, 8, 16, 32),
        'model.decode_head.in_channels': (4, 8, 16, 32, 32),
        'model.decode_head.decoder_channels': (4, 8, 16, 32),
    },
    'mambabcd.py': {  # VMamba-T depths with dims 8/16/32/64, a 16-wide decoder
        'model.backbone.arch': dict(depths=[2, 2, 4, 2], dims=8, drop_path_rate=0.2),
        'model.decode_head.in_channels': [16, 32, 64, 128],
        'model.decode_head.channels': 16,
    },
    'mambabda.py': {  # as mambabcd.py, plus a 16-wide localisation decoder
        'model.backbone.arch': dict(depths=[2, 2, 4, 2], dims=8, drop_path_rate=0.2),
        'model.decode_head.in_channels': [16, 32, 64, 128],
        'model.decode_head.channels': 16,
        'model.localization_head.in_channels': [8, 16, 32, 64],
        'model.localization_head.channels': 16,
    },
    'mambascd.py': {  # as mambabcd.py, plus 16-wide semantic decoders
        'model.backbone.arch': dict(depths=[2, 2, 4, 2], dims=8, drop_path_rate=0.2),
        'model.decode_head.in_channels': [16, 32, 64, 128],
        'model.decode_head.channels': 16,
        'model.semantic_head.in_channels': [8, 16, 32, 64],
        'model.semantic_head.channels': 16,
    },
    'scd_r18_upernet.py': {
        **_R18_TINY,
        'model.neck.in_channels': [8, 16, 32, 64],
        **{f'model.decode_head.{k}': v for k, v in _UPER_TINY.items()},
        **{f'model.semantic_head.{k}': v for k, v in _UPER_TINY.items()},
    },
}
#: How many times fewer parameters the tiny variant must have.
MIN_SHRINK = 8
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


def _has_parent(cfg: Config, dotted: str) -> bool:
    """Whether the module config that ``dotted`` (``a.b.0.c``) sets a key of exists.

    The key itself may be new (a constructor argument left at its default, which the build
    rejects if it is not one), but a typo in the path to the module cannot pass silently.
    """
    node = cfg.to_dict()
    for part in dotted.split('.')[:-1]:
        if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False
    return isinstance(node, dict) and 'type' in node


def tiny_cfg(name: str) -> Config:
    cfg = copy.deepcopy(CONFIGS[name])
    overrides = TINY_OVERRIDES[name]
    unknown = [key for key in overrides if not _has_parent(cfg, key)]
    assert not unknown, f'{name}: TINY_OVERRIDES keys of no module in the config: {unknown}'
    cfg.merge_from_dict(overrides)
    for key, value in overrides.items():  # really applied
        node = cfg
        for part in key.split('.'):
            node = node[int(part)] if isinstance(node, (list, tuple)) else node[part]
        assert node == value or list(node) == list(value), (name, key, node)
    return cfg


def build_tiny(name: str) -> BaseChangeDetector:
    torch.manual_seed(0)
    return MODELS.build(tiny_cfg(name).model)


def num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


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
        # building damage (xBD style): grades 1..4 on changed pixels, 0 background, 255 kept
        grades = torch.randint(1, 5, (1, h, w), generator=g)
        sample.gt_damage_seg = PixelData(data=torch.where(change == 1, grades, change))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def test_configs_load() -> None:
    assert CONFIGS, f'no change-detector configs found in {CONFIG_DIR}'
    assert not LOAD_ERRORS, f'base model configs that fail to load: {LOAD_ERRORS}'


def test_every_detector_has_a_config() -> None:
    covered = {_model_class(cfg) for cfg in CONFIGS.values()}
    detectors = {cls for cls in MODELS.module_dict.values()
                 if isinstance(cls, type) and issubclass(cls, BaseChangeDetector)}
    assert len(detectors) >= 2  # Siamese binary and semantic at least
    missing = sorted(cls.__name__ for cls in detectors - covered)
    assert not missing, (f'registered change detectors without a config in '
                         f'configs/_base_/models/: {missing}')


def test_every_config_has_a_tiny_setting() -> None:
    assert set(TINY_OVERRIDES) == set(CONFIGS), (
        f'configs without TINY_OVERRIDES: {sorted(set(CONFIGS) - set(TINY_OVERRIDES))}; '
        f'stale entries: {sorted(set(TINY_OVERRIDES) - set(CONFIGS))}')


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_tiny_overrides_shrink_the_model(name: str) -> None:
    full = MODELS.build(copy.deepcopy(CONFIGS[name]).model)
    tiny = build_tiny(name)
    assert type(tiny) is type(full)
    # same architecture: the same modules, only narrower
    assert [type(m) for m in tiny.modules()] == [type(m) for m in full.modules()]
    assert num_params(tiny) * MIN_SHRINK <= num_params(full), (
        f'{name}: tiny {num_params(tiny)} vs full {num_params(full)} parameters')


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
        if 'pred_damage_seg' in sample:  # building damage: 0 background, grades 1..4
            damage = sample.pred_damage_seg.data
            assert tuple(damage.shape) == (1, *size)
            assert set(damage.unique().tolist()) <= {0, 1, 2, 3, 4}
