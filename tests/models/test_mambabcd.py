"""MambaBCD (ChangeMamba, Chen et al., TGRS 2024): sizes, official names, mechanisms, training.

Oracles: the official parameter counts of ``STMambaBCD`` (T/S/B, counted from
github.com/ChenHongruixuan/MambaCD ``changedetection/models/MambaBCD.py`` with the vssm1 configs);
the official decoder's key layout written out from ``ChangeDecoder.py``; the official
construction of the sequential / cross tensors (an empty tensor filled by column slices).
"""
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch
from mmengine.config import Config
from mmengine.structures import PixelData

import mmrs.models  # noqa: F401  (fills the registry)
from mmrs.models.backbones import VMamba
from mmrs.models.backbones.vmamba import SS2D, set_scan_backend
from mmrs.models.decode_heads import MAMBABCD_KEY_MAP, MambaBCDHead, interleave_columns
from mmrs.registry import MODELS
from mmrs.structures import ChangeDataSample
from mmrs.utils import safe_torch_load

torch.set_num_threads(2)

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / 'configs' / 'changemamba'
#: Official STMambaBCD parameter counts (MambaBCD-Tiny / Small / Base).
OFFICIAL_PARAMS = {'tiny': 32_613_506, 'small': 53_999_618, 'base': 92_399_874}
#: A small but complete MambaBCD: VMamba depths (2, 2, 4, 2) with dims 8..64, decoder width 16.
TINY = {
    'model.backbone.arch': dict(depths=[2, 2, 4, 2], dims=8, drop_path_rate=0.2),
    'model.scan_backend': 'torch',
    'model.decode_head.in_channels': [16, 32, 64, 128],
    'model.decode_head.channels': 16,
}


def _cfg(variant: str = 'tiny', dataset: str = 'levircd') -> Config:
    return Config.fromfile(CONFIGS / f'mambabcd_{variant}_256x256_20k_{dataset}.py')


def _tiny_model() -> torch.nn.Module:
    cfg = _cfg()
    cfg.merge_from_dict(TINY)
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


@pytest.fixture
def model() -> torch.nn.Module:
    """The tiny MambaBCD built from the Tiny LEVIR-CD config."""
    return _tiny_model()


@pytest.fixture
def tool() -> ModuleType:
    """``tools/model_converters/mambacd2mmrs.py`` as a module."""
    spec = importlib.util.spec_from_file_location(
        'mambacd2mmrs', ROOT / 'tools' / 'model_converters' / 'mambacd2mmrs.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestConfigs:

    @pytest.mark.parametrize('variant', ['tiny', 'small', 'base'])
    def test_parameter_counts_equal_official(self, variant: str) -> None:
        with torch.device('meta'):
            model = MODELS.build(_cfg(variant).model)
        assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[variant]

    @pytest.mark.parametrize('dataset', ['levircd', 'whucd', 'sysucd'])
    def test_configs_follow_the_official_recipe(self, dataset: str) -> None:
        for variant in ('tiny', 'small', 'base'):
            cfg = _cfg(variant, dataset)
            assert cfg.train_dataloader.batch_size == 16
            assert cfg.optim_wrapper.optimizer.type == 'AdamW'
            assert cfg.optim_wrapper.optimizer.lr == 1e-4
            assert cfg.train_cfg.max_iters == 20000
            assert not cfg.get('param_scheduler')  # constant learning rate
            losses = {d['type']: d['loss_weight'] for d in cfg.model.decode_head.loss_decode}
            assert losses == {'mmseg.CrossEntropyLoss': 1.0, 'mmseg.LovaszLoss': 0.75}
            assert cfg.model.decode_head.num_classes == 2
            expected = dict(levircd='LEVIRCDDataset', whucd='WHUCDDataset', sysucd='SYSUCDDataset')
            assert cfg.train_dataloader.dataset.type == expected[dataset]


def _official_decoder_keys(block_keys: list[str]) -> set[str]:
    """Decoder keys of the official ChangeDecoder, from its module layout."""
    bn = ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
    keys = set()
    for level in range(1, 5):
        for mech in range(1, 4):
            name = f'st_block_{level}{mech}'
            keys |= {f'{name}.0.weight', f'{name}.0.bias'}  # 1x1 conv
            keys |= {f'{name}.2.{k}' for k in block_keys}  # VSSBlock (index 2)
        keys |= {f'fuse_layer_{level}.0.weight', f'fuse_layer_{level}.0.bias'}
        keys |= {f'fuse_layer_{level}.1.{k}' for k in bn}
    for level in range(1, 4):
        keys |= {f'smooth_layer_{level}.conv1.weight', f'smooth_layer_{level}.conv2.weight'}
        keys |= {f'smooth_layer_{level}.bn{i}.{k}' for i in (1, 2) for k in bn}
    return keys


class TestStateDict:

    def test_state_dict_keys_mirror_the_official_layout(self, model: torch.nn.Module,
                                                        tool: ModuleType) -> None:
        sd = model.state_dict()
        # The backbone's VSS block keys equal the official ones (tested in test_vmamba.py).
        block_keys = [k[len('backbone.layers.0.blocks.0.'):] for k in sd
                      if k.startswith('backbone.layers.0.blocks.0.')]
        official = {f'decoder.{k}' for k in _official_decoder_keys(block_keys)}
        official |= {'main_clf.weight', 'main_clf.bias'}
        official |= {f'encoder.{k[len("backbone."):]}' for k in sd if k.startswith('backbone.')}
        converted = tool.convert_mambabcd({k: torch.zeros(1) for k in official})
        assert set(converted) == set(sd)
        renamed = tool.convert_mambabcd({'module.main_clf.bias': 0})  # DataParallel prefix
        assert renamed == {'decode_head.conv_seg.bias': 0}
        with pytest.raises(KeyError):
            tool.convert_mambabcd({'classifier.head.weight': torch.zeros(1)})
        assert MAMBABCD_KEY_MAP['main_clf.'] == 'decode_head.conv_seg.'

    def test_converter_round_trip_loads_strictly(self, model: torch.nn.Module, tool: ModuleType,
                                                 tmp_path: Path) -> None:
        """A synthetic official-layout checkpoint converts and loads with strict=True."""
        inverse = {v: k for k, v in MAMBABCD_KEY_MAP.items()}
        official = {}
        for key, value in model.state_dict().items():
            dst = max((p for p in inverse if key.startswith(p)), key=len)
            official[inverse[dst] + key[len(dst):]] = torch.rand_like(value.float()).to(value.dtype)
        src = tmp_path / 'official.pth'
        torch.save({'model': official}, src)
        state = tool.convert_mambabcd(tool.unwrap(safe_torch_load(src, map_location='cpu')))
        torch.save({'state_dict': state}, tmp_path / 'mmrs.pth')
        loaded = safe_torch_load(tmp_path / 'mmrs.pth', map_location='cpu')['state_dict']
        model.load_state_dict(loaded, strict=True)
        assert torch.equal(model.decode_head.conv_seg.weight, official['main_clf.weight'])
        assert torch.equal(model.decode_head.st_block_42[0].weight,
                           official['decoder.st_block_42.0.weight'])


class TestDecoder:

    def test_interleave_columns_matches_the_official_construction(self) -> None:
        pre, post = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
        ref = torch.empty(2, 3, 4, 10)
        ref[..., ::2] = pre
        ref[..., 1::2] = post
        assert torch.equal(interleave_columns(pre, post), ref)

    def test_mechanisms_see_the_official_inputs(self, model: torch.nn.Module) -> None:
        """Parallel: channel concat; sequential: interleaved columns; cross: side by side."""
        model.eval()
        head: MambaBCDHead = model.decode_head
        seen = {}
        for mech in (1, 2, 3):
            getattr(head, f'st_block_3{mech}').register_forward_hook(
                lambda m, args, out, mech=mech: seen.__setitem__(mech, (args[0], out)))
        x = torch.randn(1, 2, 3, 64, 64)
        with torch.no_grad():
            f1, f2 = model.extract_pair_feat(x)
            model._forward(x)
        pre, post = f1[2], f2[2]
        w = pre.shape[-1]
        assert torch.equal(seen[1][0], torch.cat([pre, post], 1))
        assert torch.equal(seen[2][0][..., 0::2], pre) and torch.equal(seen[2][0][..., 1::2], post)
        assert torch.equal(seen[3][0][..., :w], pre) and torch.equal(seen[3][0][..., w:], post)
        assert seen[2][1].shape[-1] == seen[3][1].shape[-1] == 2 * w

    def test_head_rejects_bad_inputs(self) -> None:
        with pytest.raises(ValueError):
            MambaBCDHead(in_channels=[16, 32, 64], num_classes=2)
        with pytest.raises(ValueError):
            MambaBCDHead(in_channels=[16, 32, 64, 127], num_classes=2)
        with pytest.raises(ValueError):
            MambaBCDHead(in_channels=[16, 32, 64, 128], channels=16, norm_layer='gn',
                         num_classes=2)


def _samples(n: int, size: tuple[int, int]) -> list[ChangeDataSample]:
    out = []
    for _ in range(n):
        s = ChangeDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, 2, (1, *size)))
        s.set_metainfo(dict(img_shape=size, ori_shape=size, pad_shape=size))
        out.append(s)
    return out


class TestTraining:

    def test_tiny_model_trains_and_predicts(self, model: torch.nn.Module) -> None:
        model.train()
        x = torch.randn(2, 2, 3, 64, 64)
        losses = model(x, _samples(2, (64, 64)), mode='loss')
        assert set(losses) == {'decode.loss_ce', 'decode.loss_lovasz', 'decode.acc_seg'}
        total = losses['decode.loss_ce'] + losses['decode.loss_lovasz']
        assert torch.isfinite(total)
        total.backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert model.decode_head.st_block_11[0].weight.grad.abs().sum() > 0
        model.eval()
        with torch.no_grad():
            logits = model(x, mode='tensor')
            preds = model(x, _samples(2, (64, 64)), mode='predict')
        assert logits.shape == (2, 2, 16, 16)  # stride-4 logits, 2 classes as official
        assert all(p.pred_sem_seg.data.shape == (1, 64, 64) for p in preds)



class TestScanBackend:
    """One knob (the detector's ``scan_backend``) decides the scan of encoder and decoder."""

    @staticmethod
    def _backends(model: torch.nn.Module) -> dict[str, str]:
        return {name: m.scan_backend for name, m in model.named_modules() if isinstance(m, SS2D)}

    def test_detector_knob_reaches_encoder_and_decoder(self) -> None:
        cfg = _cfg()
        cfg.merge_from_dict({**TINY, 'model.backbone.scan_backend': 'cuda'})
        backends = self._backends(MODELS.build(cfg.model))
        assert len(backends) == 10 + 12  # 10 encoder blocks, 4 levels x 3 decoder blocks
        assert any(k.startswith('decode_head.') for k in backends)
        assert set(backends.values()) == {'torch'}
        cfg.model.scan_backend = None  # None: each layer keeps what its own config says
        backends = self._backends(MODELS.build(cfg.model))
        assert {v for k, v in backends.items() if k.startswith('backbone.')} == {'cuda'}
        assert {v for k, v in backends.items() if k.startswith('decode_head.')} == {'auto'}

    def test_forward_uses_the_chosen_backend(self, model: torch.nn.Module,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
        from mmrs.models.backbones.vmamba import ss2d
        seen = []
        real = ss2d.selective_scan

        def spy(*args, backend: str, **kwargs):
            seen.append(backend)
            return real(*args, backend='torch', **kwargs)

        monkeypatch.setattr(ss2d, 'selective_scan', spy)
        assert set_scan_backend(model, 'auto', chunk_size=32) == 22
        model.eval()
        with torch.no_grad():
            model(torch.randn(1, 2, 3, 64, 64), mode='tensor')
        assert seen == ['auto'] * 22
        with pytest.raises(ValueError, match='scan_backend'):
            set_scan_backend(model, 'triton')


def _vmamba_imagenet_state_dict(backbone: VMamba) -> dict[str, torch.Tensor]:
    """An official VSSM ImageNet checkpoint: the encoder keys without ``outnorm*`` plus the
    ``classifier.{norm,head}`` of ``VSSM`` (1000 classes)."""
    sd = {k: torch.randn_like(v) for k, v in backbone.state_dict().items()
          if not k.startswith('outnorm')}
    dim = backbone.dims[-1]
    sd.update({'classifier.norm.weight': torch.ones(dim), 'classifier.norm.bias': torch.zeros(dim),
               'classifier.head.weight': torch.zeros(1000, dim),
               'classifier.head.bias': torch.zeros(1000)})
    return sd


class TestVMambaImageNetConverter:

    @pytest.fixture
    def backbone(self) -> VMamba:
        return VMamba(arch=dict(depths=[1, 1, 2, 1], dims=8), scan_backend='torch')

    def test_imagenet_checkpoint_loads_strictly(self, backbone: VMamba, tool: ModuleType,
                                                tmp_path: Path) -> None:
        official = _vmamba_imagenet_state_dict(backbone)
        torch.save({'model': official, 'epoch': 262}, tmp_path / 'vssm_tiny.pth')
        src = tool.unwrap(safe_torch_load(tmp_path / 'vssm_tiny.pth'))
        assert tool.detect_model(src) == 'vmamba'
        state = tool.convert(src)
        assert not any(k.startswith('classifier.') for k in state)
        backbone.load_state_dict(state, strict=True)
        assert torch.equal(backbone.layers[2].blocks[1].op.x_proj_weight,
                           official['layers.2.blocks.1.op.x_proj_weight'])
        # outnorm{i}: identity LayerNorms, as the official Backbone_VSSM leaves them
        assert torch.equal(backbone.outnorm3.weight, torch.ones(64))
        assert torch.equal(backbone.outnorm0.bias, torch.zeros(8))

    def test_legacy_names_are_renamed_as_official(self, backbone: VMamba,
                                                  tool: ModuleType) -> None:
        official = _vmamba_imagenet_state_dict(backbone)
        legacy = {}
        for key, value in official.items():  # the names VSSM._load_from_state_dict renames
            key = key.replace('blocks.0.norm.', 'blocks.0.ln_1.')
            key = key.replace('blocks.0.op.', 'blocks.0.self_attention.')
            legacy[key.replace('classifier.', '')] = value  # old top-level norm.* / head.*
        assert 'layers.1.blocks.0.ln_1.weight' in legacy and 'head.weight' in legacy
        state = tool.convert_vmamba_imagenet(legacy)
        backbone.load_state_dict(state, strict=True)
        assert torch.equal(backbone.layers[1].blocks[0].norm.weight,
                           legacy['layers.1.blocks.0.ln_1.weight'])

    def test_wrong_checkpoints_are_refused(self, tool: ModuleType) -> None:
        with pytest.raises(KeyError, match='VMamba ImageNet'):
            tool.convert_vmamba_imagenet({'encoder.patch_embed.0.weight': torch.zeros(1)})
        with pytest.raises(KeyError, match='no stage 1'):
            tool.convert_vmamba_imagenet({'layers.0.blocks.0.norm.weight': torch.zeros(8)})
        with pytest.raises(ValueError, match='not a ChangeMamba or VMamba'):
            tool.detect_model({'fc.weight': torch.zeros(1)})
