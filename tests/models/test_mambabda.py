"""MambaBDA (ChangeMamba, Chen et al., TGRS 2024): sizes, official names, losses, prediction.

Oracles: the official parameter counts of ``STMambaBDA`` (T/S/B, counted from
github.com/ChenHongruixuan/MambaCD ``changedetection/models/STMambaBDA.py`` with the vssm1
configs, ``output_building=2``, ``output_damage=5``); the official key layout of its decoders
(``ChangeDecoder.py``, ``SemanticDecoder.py``); the official total loss of
``train_MambaBDA.py`` recomputed from the raw logits with ``torch.nn.functional`` and the
Lovász-softmax derived from its definition (``tests/models/test_mambascd.py``).
"""
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.structures import PixelData

import mmrs.models  # noqa: F401  (fills the registry)
from mmrs.evaluation import XView2Metric
from mmrs.models.change_detectors import MAMBABDA_KEY_MAP, MambaBDADetector
from mmrs.registry import MODELS
from mmrs.structures import ChangeDataSample
from tests.models.test_mambabcd import _official_decoder_keys
from tests.models.test_mambascd import _official_semantic_keys, lovasz_cumulative

torch.set_num_threads(2)

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / 'configs' / 'changemamba'
#: Official STMambaBDA parameter counts (MambaBDA-Tiny / Small / Base).
OFFICIAL_PARAMS = {'tiny': 34_869_767, 'small': 56_255_879, 'base': 94_717_575}
#: A small but complete MambaBDA: VMamba dims 8..64, decoders 16 wide.
TINY = {
    'model.backbone.arch': dict(depths=[1, 1, 2, 1], dims=8, drop_path_rate=0.2),
    'model.scan_backend': 'torch',
    'model.decode_head.in_channels': [16, 32, 64, 128],
    'model.decode_head.channels': 16,
    'model.localization_head.in_channels': [8, 16, 32, 64],
    'model.localization_head.channels': 16,
}
SIZE = (64, 64)


def _cfg(variant: str = 'tiny') -> Config:
    return Config.fromfile(CONFIGS / f'mambabda_{variant}_256x256_50k_xbd.py')


def _build(**overrides) -> MambaBDADetector:
    cfg = _cfg()
    cfg.merge_from_dict({**TINY, **overrides})
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


@pytest.fixture
def model() -> MambaBDADetector:
    """The tiny MambaBDA built from the Tiny xBD config."""
    return _build()


@pytest.fixture
def tool() -> ModuleType:
    """``tools/model_converters/mambacd2mmrs.py`` as a module."""
    spec = importlib.util.spec_from_file_location(
        'mambacd2mmrs', ROOT / 'tools' / 'model_converters' / 'mambacd2mmrs.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _samples(n: int, seed: int = 0) -> list[ChangeDataSample]:
    """xBD-style labels: buildings 1 (some 255), damage 1..4 on buildings, 0 elsewhere."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        loc = torch.randint(0, 2, (1, *SIZE), generator=g)
        damage = torch.where(loc == 1, torch.randint(1, 5, (1, *SIZE), generator=g), 0)
        loc[:, :2, :7] = 255
        damage[:, -3:, :4] = 255
        s = ChangeDataSample(metainfo=dict(img_shape=SIZE, ori_shape=SIZE, pad_shape=SIZE))
        s.gt_sem_seg = PixelData(data=loc)
        s.gt_damage_seg = PixelData(data=damage)
        out.append(s)
    return out


class TestConfigs:

    @pytest.mark.parametrize('variant', ['tiny', 'small', 'base'])
    def test_parameter_counts_equal_official(self, variant: str) -> None:
        with torch.device('meta'):
            model = MODELS.build(_cfg(variant).model)
        assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[variant]

    def test_configs_follow_the_official_recipe(self) -> None:
        for variant in ('tiny', 'small', 'base'):
            cfg = _cfg(variant)
            assert cfg.train_dataloader.batch_size == 16
            assert cfg.optim_wrapper.optimizer.lr == 1e-4
            assert cfg.optim_wrapper.optimizer.weight_decay == 5e-3
            assert not cfg.get('param_scheduler')  # constant learning rate
            assert cfg.train_cfg.max_iters == 50000
            assert cfg.model.decode_head.num_classes == 5
            assert cfg.model.localization_head.num_classes == 2
            weights = {d['type']: d['loss_weight'] for d in cfg.model.decode_head.loss_decode}
            assert weights == {'mmseg.CrossEntropyLoss': 1.0, 'mmseg.LovaszLoss': 0.75}
            weights = {d['type']: d['loss_weight']
                       for d in cfg.model.localization_head.loss_decode}
            assert weights == {'mmseg.CrossEntropyLoss': 1.0, 'mmseg.LovaszLoss': 0.5}
            assert cfg.train_dataloader.dataset.type == 'XBDDataset'


class TestStateDict:

    def test_keys_mirror_the_official_layout(self, model: MambaBDADetector,
                                             tool: ModuleType) -> None:
        sd = model.state_dict()
        block_keys = [k[len('backbone.layers.0.blocks.0.'):] for k in sd
                      if k.startswith('backbone.layers.0.blocks.0.')]
        official = {f'decoder_damage.{k}' for k in _official_decoder_keys(block_keys)}
        official |= {f'decoder_building.{k}' for k in _official_semantic_keys(block_keys)}
        official |= {'main_clf.weight', 'main_clf.bias', 'aux_clf.weight', 'aux_clf.bias'}
        official |= {f'encoder.{k[len("backbone."):]}' for k in sd if k.startswith('backbone.')}
        assert set(tool.convert_mambabda({k: torch.zeros(1) for k in official})) == set(sd)
        assert tool.detect_model(dict.fromkeys(official)) == 'mambabda'
        assert sd['decode_head.conv_seg.weight'].shape == (5, 16, 1, 1)  # main_clf: damage
        assert sd['localization_head.conv_seg.weight'].shape == (2, 16, 1, 1)  # aux_clf

    def test_converted_checkpoint_loads_strictly(self, model: MambaBDADetector,
                                                 tool: ModuleType) -> None:
        inverse = {dsts[0]: src for src, dsts in MAMBABDA_KEY_MAP.items()}
        official = {}
        for key, value in model.state_dict().items():
            dst = max((p for p in inverse if key.startswith(p)), key=len)
            official['module.' + inverse[dst] + key[len(dst):]] = \
                torch.rand_like(value.float()).to(value.dtype)
        model.load_state_dict(tool.convert(official), strict=True)
        assert torch.equal(model.localization_head.conv_seg.weight,
                           official['module.aux_clf.weight'])
        assert torch.equal(model.decode_head.st_block_23[0].bias,
                           official['module.decoder_damage.st_block_23.0.bias'])


class TestLosses:

    def test_total_loss_equals_the_official_formula(self, model: MambaBDADetector) -> None:
        model.eval()
        x = torch.randn(2, 2, 3, *SIZE, generator=torch.Generator().manual_seed(1))
        samples = _samples(2)
        with torch.no_grad():
            losses = model.loss(x, samples)
            damage, loc = (F.interpolate(o, size=SIZE, mode='bilinear', align_corners=False)
                           for o in model._forward(x))
        label_loc = torch.cat([s.gt_sem_seg.data for s in samples])
        label_dmg = torch.cat([s.gt_damage_seg.data for s in samples])
        label_dmg = label_dmg.masked_fill(label_dmg == 0, 255)  # the official training loader
        want = (F.cross_entropy(loc, label_loc, ignore_index=255)
                + F.cross_entropy(damage, label_dmg, ignore_index=255)
                + 0.5 * lovasz_cumulative(loc, label_loc)
                + 0.75 * lovasz_cumulative(damage, label_dmg))
        assert {'decode.loss_ce', 'decode.loss_lovasz', 'loc.loss_ce', 'loc.loss_lovasz'} <= \
            set(losses)
        got = sum(v for k, v in losses.items() if 'loss' in k)
        assert got.item() == pytest.approx(want.item(), rel=1e-5)

    def test_training_reaches_every_parameter(self, model: MambaBDADetector) -> None:
        model.train()
        losses = model.loss(torch.randn(2, 2, 3, *SIZE), _samples(2))
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name

    def test_missing_damage_labels_are_named(self, model: MambaBDADetector) -> None:
        samples = _samples(1)
        del samples[0].gt_damage_seg
        with pytest.raises(KeyError, match='gt_damage_seg'):
            model.loss(torch.randn(1, 2, 3, *SIZE), samples)


class TestPrediction:

    def test_localisation_reads_the_pre_image_only(self, model: MambaBDADetector) -> None:
        model.eval()
        x = torch.randn(1, 2, 3, *SIZE)
        y = x.clone()
        y[:, 1] = torch.randn(1, 3, *SIZE)  # another post-disaster image
        with torch.no_grad():
            (dmg_x, loc_x), (dmg_y, loc_y) = model._forward(x), model._forward(y)
        assert torch.equal(loc_x, loc_y)
        assert not torch.allclose(dmg_x, dmg_y)

    def test_predictions_carry_localisation_and_damage(self, model: MambaBDADetector) -> None:
        model.eval()
        x = torch.randn(2, 2, 3, *SIZE)
        samples = _samples(2)
        with torch.no_grad():
            damage, loc = model.encode_decode(x, [s.metainfo for s in samples]).split([5, 2], 1)
        for mask in (False, True):
            model.mask_damage_by_localization = mask
            with torch.no_grad():
                preds = model.predict(x, samples)
            for i, p in enumerate(preds):
                assert p.pred_sem_seg.data.shape == p.pred_damage_seg.data.shape == (1, *SIZE)
                assert torch.equal(p.pred_sem_seg.data[0], loc[i].argmax(0))
                want = damage[i].argmax(0)
                if mask:
                    want = want * (loc[i].argmax(0) != 0)
                assert torch.equal(p.pred_damage_seg.data[0], want)
                assert p.damage_logits.data.shape == (5, *SIZE)
            metric = XView2Metric()
            metric.process({}, preds)
            assert {'score', 'mambacd/oa_f1'} <= set(metric.compute_metrics(metric.results))
