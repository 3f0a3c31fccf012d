"""ChangeViT: converter, parameter counts, any-size forward, multispectral input, pos-embed.

Official output parity needs the official code, so it is a script
(``tools/model_converters/parity/changevit.py``), not a test; the official key names and
shapes are written out here from the official ``model/{encoder,decoder,resnet}.py``
(torchvision's ResNet-18 has the same names as the official ``resnet.py``).
"""
import copy
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F
import torchvision
from mmengine.config import Config
from mmengine.structures import PixelData

import mmrs.models  # noqa: F401  (fills the registry)
from mmrs.models.backbones import ChangeViTEncoder, DINOv2ViT
from mmrs.models.backbones.vit_dinov2 import resize_pos_embed
from mmrs.models.decode_heads import BCEDiceLoss
from mmrs.registry import MODELS
from mmrs.structures import ChangeDataSample
from mmrs.utils import safe_torch_load

torch.set_num_threads(2)
ROOT = Path(__file__).resolve().parents[2]
BASE_CFG = ROOT / 'configs' / '_base_' / 'models' / 'changevit.py'
# Official Trainer(variant) totals, counted on the official code (parity script), and the
# modules it builds but never runs: ResNet-18 layer4 and fc, the ViT's mask_token.
OFFICIAL_TOTAL = {'tiny': 20_660_648, 'small': 41_145_992}
UNUSED = {'layer4': 8_393_728, 'fc': 513_000}
EMBED = {'tiny': 192, 'small': 384}


def _cfg(variant: str) -> Config:
    name = f'changevit_{variant}_256x256_80k_levircd.py'
    return Config.fromfile(str(ROOT / 'configs' / 'changevit' / name))


def _small_model_cfg(dim: int = 32, layers: int = 2, base: int = 64, bands: int = 3) -> dict:
    """A narrow ChangeViT model config (ViT width ``dim``, ``layers`` blocks)."""
    cfg = copy.deepcopy(Config.fromfile(str(BASE_CFG)).model)
    cfg.backbone.update(in_channels=bands, detail_base_channels=base)
    if bands != 3:
        cfg.data_preprocessor.update(mean=[100.0] * bands, std=[50.0] * bands)
    cfg.backbone.vit.update(embed_dims=dim, num_layers=layers, num_heads=4)
    cfg.decode_head.in_channels = [base, 2 * base, 4 * base, dim]
    return cfg


def official_state_dict(dim: int, depth: int, bands: int = 3, seed: int = 0) -> dict:
    """Random tensors under the official ``Trainer`` names and shapes (ResNet-18 width)."""
    shapes: dict[str, tuple] = {
        'encoder.vit.pos_embed': (1, 256, dim),
        'encoder.vit.mask_token': (1, dim),
        'encoder.vit.patch_embed.proj.weight': (dim, bands, 16, 16),
        'encoder.vit.patch_embed.proj.bias': (dim, ),
        'encoder.vit.norm.weight': (dim, ),
        'encoder.vit.norm.bias': (dim, ),
    }
    for i in range(depth):
        p = f'encoder.vit.blocks.{i}.'
        shapes.update({
            p + 'norm1.weight': (dim, ), p + 'norm1.bias': (dim, ),
            p + 'attn.qkv.weight': (3 * dim, dim), p + 'attn.qkv.bias': (3 * dim, ),
            p + 'attn.proj.weight': (dim, dim), p + 'attn.proj.bias': (dim, ),
            p + 'norm2.weight': (dim, ), p + 'norm2.bias': (dim, ),
            p + 'mlp.fc1.weight': (4 * dim, dim), p + 'mlp.fc1.bias': (4 * dim, ),
            p + 'mlp.fc2.weight': (dim, 4 * dim), p + 'mlp.fc2.bias': (dim, ),
        })
    resnet = torchvision.models.resnet18().state_dict()
    resnet['conv1.weight'] = torch.empty(64, bands, 7, 7)
    shapes.update({'encoder.resnet.' + k: tuple(v.shape) for k, v in resnet.items()})
    for name, ctx in (('c2_c5', 64), ('c3_c5', 128), ('c4_c5', 256)):
        p = f'decoder.structure_enhance.{name}.'
        shapes.update({
            p + 'norm1.weight': (dim, ), p + 'norm1.bias': (dim, ),
            p + 'norm2.weight': (ctx, ), p + 'norm2.bias': (ctx, ),
            p + 'attn.q.weight': (dim, dim), p + 'attn.kv.weight': (2 * dim, ctx),
            p + 'attn.proj.weight': (dim, dim), p + 'attn.proj.bias': (dim, ),
            p + 'norm3.weight': (dim, ), p + 'norm3.bias': (dim, ),
            p + 'mlp.fc1.weight': (4 * dim, dim), p + 'mlp.fc1.bias': (4 * dim, ),
            p + 'mlp.fc2.weight': (dim, 4 * dim), p + 'mlp.fc2.bias': (dim, ),
        })
    shapes['decoder.structure_enhance.fuse.weight'] = (dim, 3 * dim, 1, 1)
    for i, c in enumerate((64, 128, 256, dim)):
        p, m = f'decoder.mlp.{i}.', c // 4
        shapes.update({
            p + '0.weight': (m, 3 * c, 1, 1), p + '1.weight': (m, ), p + '1.bias': (m, ),
            p + '1.running_mean': (m, ), p + '1.running_var': (m, ),
            p + '1.num_batches_tracked': (), p + '3.weight': (m, m, 3, 3),
            p + '5.weight': (m, m, 3, 3), p + '7.weight': (c, m, 3, 3),
        })
    for name, cin, cout in (('up_c5', dim, 256), ('up_c4', 256, 128), ('up_c3', 128, 64)):
        shapes.update({f'decoder.{name}.0.weight': (cout, cin, 1, 1),
                       f'decoder.{name}.1.weight': (cout, cout, 4, 4),
                       f'decoder.{name}.1.bias': (cout, )})
    shapes.update({'decoder.classfier.0.weight': (64, 64, 4, 4),
                   'decoder.classfier.0.bias': (64, ),
                   'decoder.classfier.1.weight': (1, 64, 3, 3)})
    gen = torch.Generator().manual_seed(seed)
    return {k: (torch.tensor(7) if k.endswith('num_batches_tracked')
                else torch.randn(s, generator=gen)) for k, s in shapes.items()}


@pytest.fixture(scope='module')
def tool() -> ModuleType:
    """``tools/model_converters/changevit2mmrs.py`` as a module."""
    spec = importlib.util.spec_from_file_location(
        'changevit2mmrs', ROOT / 'tools' / 'model_converters' / 'changevit2mmrs.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestConverter:

    # official key -> where the mmrs model must hold that tensor
    SPOT_CHECKS = {
        'encoder.vit.blocks.1.attn.qkv.weight': 'backbone.vit.blocks.1.attn.qkv.weight',
        'encoder.vit.pos_embed': 'backbone.vit.pos_embed',
        'encoder.resnet.layer2.0.downsample.1.running_var':
            'backbone.resnet.layer2.0.downsample.1.running_var',
        'encoder.resnet.conv1.weight': 'backbone.resnet.conv1.weight',
        'decoder.structure_enhance.c3_c5.attn.kv.weight':
            'backbone.injector.c3_c5.attn.kv.weight',
        'decoder.structure_enhance.fuse.weight': 'backbone.injector.fuse.weight',
        'decoder.mlp.3.7.weight': 'decode_head.diff.3.7.weight',
        'decoder.mlp.0.1.running_mean': 'decode_head.diff.0.1.running_mean',
        'decoder.up_c5.1.bias': 'decode_head.up_c5.1.bias',
        'decoder.classfier.0.weight': 'decode_head.up_cls.weight',
        'decoder.classfier.1.weight': 'decode_head.conv_seg.weight',
    }

    @pytest.mark.parametrize('wrap', ['bare', 'state_dict', 'model', 'module'])
    def test_official_checkpoint_loads_strictly(self, tool, tmp_path, wrap: str) -> None:
        official = official_state_dict(dim=32, depth=2)
        ckpt = {'bare': official, 'state_dict': {'state_dict': official, 'epoch': 3},
                'model': {'model': official},
                'module': {'module.' + k: v for k, v in official.items()}}[wrap]
        torch.save(ckpt, tmp_path / 'official.pth')
        tool.convert_file(tmp_path / 'official.pth', tmp_path / 'mmrs.pth')
        state = safe_torch_load(tmp_path / 'mmrs.pth')['state_dict']
        model = MODELS.build(_small_model_cfg(dim=32, layers=2))
        model.load_state_dict(state, strict=True)
        ours = model.state_dict()
        for src, dst in self.SPOT_CHECKS.items():
            assert torch.equal(ours[dst], official[src]), (src, dst)
        dropped = {k for k in official if k.startswith(('encoder.resnet.layer4.',
                                                        'encoder.resnet.fc.'))}
        assert len(state) == len(official) - len(dropped) - 1  # and the mask token

    def test_unknown_key_is_refused_naming_the_file(self, tool, tmp_path) -> None:
        official = official_state_dict(dim=32, depth=1)
        official['decoder.extra.weight'] = torch.zeros(1)
        torch.save(official, tmp_path / 'bad.pth')
        with pytest.raises(ValueError, match=r'bad\.pth.*decoder\.extra\.weight'):
            tool.convert_file(tmp_path / 'bad.pth', tmp_path / 'out.pth')

    @pytest.mark.parametrize('kind', ['deit', 'dinov2'])
    def test_vit_pretrain_keeps_what_the_official_loads(self, tool, tmp_path, kind) -> None:
        dim, gen = 32, torch.Generator().manual_seed(1)
        vit = DINOv2ViT(embed_dims=dim, num_layers=2, num_heads=4)
        blocks = {k: torch.randn(v.shape, generator=gen) for k, v in vit.state_dict().items()
                  if k.startswith(('blocks.', 'norm.'))}
        patch = 16 if kind == 'deit' else 14
        grid = 14 if kind == 'deit' else 37
        raw = {'cls_token': torch.randn(1, 1, dim),
               'pos_embed': torch.randn(1, 1 + grid * grid, dim),
               'patch_embed.proj.weight': torch.randn(dim, 3, patch, patch),
               'patch_embed.proj.bias': torch.randn(dim), **blocks}
        if kind == 'deit':
            raw.update({'head.weight': torch.randn(1000, dim), 'head.bias': torch.randn(1000)})
            raw = {'model': raw}
        else:
            raw.update({'mask_token': torch.randn(1, dim)})
            raw.update({f'blocks.{i}.ls{j}.gamma': torch.randn(dim)
                        for i in range(2) for j in (1, 2)})
        torch.save(raw, tmp_path / 'raw.pth')
        state = tool.convert_file(tmp_path / 'raw.pth', tmp_path / 'vit.pth')
        result = vit.load_state_dict(state, strict=False)
        assert sorted(result.missing_keys) == ['patch_embed.proj.weight', 'pos_embed']
        assert not result.unexpected_keys
        # the raw file works as the ViT's init_cfg directly, with the same result
        before = vit.pos_embed.detach().clone()
        loaded = DINOv2ViT(embed_dims=dim, num_layers=2, num_heads=4, init_cfg=dict(
            type='Pretrained', checkpoint=str(tmp_path / 'raw.pth')))
        loaded.pos_embed.data.copy_(before)
        loaded.init_weights()
        assert torch.equal(loaded.blocks[1].attn.qkv.weight, blocks['blocks.1.attn.qkv.weight'])
        assert torch.equal(loaded.pos_embed, before)  # kept at init, as officially

    def test_vit_from_a_converted_model_with_prefix(self, tool, tmp_path) -> None:
        official = official_state_dict(dim=32, depth=2)
        torch.save(official, tmp_path / 'official.pth')
        tool.convert_file(tmp_path / 'official.pth', tmp_path / 'mmrs.pth')
        vit = DINOv2ViT(embed_dims=32, num_layers=2, num_heads=4, init_cfg=dict(
            type='Pretrained', checkpoint=str(tmp_path / 'mmrs.pth'), prefix='backbone.vit.'))
        vit.init_weights()
        assert torch.equal(vit.pos_embed, official['encoder.vit.pos_embed'])  # kept as is
        assert torch.equal(vit.patch_embed.proj.weight,
                           official['encoder.vit.patch_embed.proj.weight'])

    def test_checkpoint_of_neither_kind(self, tool, tmp_path) -> None:
        torch.save({'foo.weight': torch.zeros(1)}, tmp_path / 'x.pth')
        with pytest.raises(ValueError, match=r'x\.pth.*neither'):
            tool.convert_file(tmp_path / 'x.pth', tmp_path / 'y.pth')


class TestParameterCounts:

    @pytest.mark.parametrize('variant', ['tiny', 'small'])
    def test_equal_official_minus_unused_modules(self, variant: str) -> None:
        with torch.device('meta'):
            model = MODELS.build(_cfg(variant).model)
        count = sum(p.numel() for p in model.parameters())
        unused = UNUSED['layer4'] + UNUSED['fc'] + EMBED[variant]  # + mask_token
        assert count == OFFICIAL_TOTAL[variant] - unused
        assert count == {'tiny': 11_753_728, 'small': 32_238_880}[variant]

    def test_unused_module_sizes(self) -> None:
        resnet = torchvision.models.resnet18()  # the official resnet.py layout
        assert sum(p.numel() for p in resnet.layer4.parameters()) == UNUSED['layer4']
        assert sum(p.numel() for p in resnet.fc.parameters()) == UNUSED['fc']


def _samples(sizes, bands: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for h, w in sizes:
        inputs.append(torch.randint(0, 256, (2, bands, h, w), generator=gen, dtype=torch.uint8))
        sample = ChangeDataSample(metainfo=dict(ori_shape=(h, w), img_shape=(h, w)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 2, (1, h, w), generator=gen))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


class TestForward:

    def test_levels_at_48x80(self) -> None:
        encoder = MODELS.build(_small_model_cfg(dim=32, layers=1, base=8).backbone).eval()
        feats = encoder(torch.randn(2, 3, 48, 80))
        assert [tuple(f.shape) for f in feats] == [(2, 8, 24, 40), (2, 16, 12, 20),
                                                   (2, 32, 6, 10), (2, 32, 3, 5)]
        assert encoder.out_channels == [8, 16, 32, 32]

    def test_mixed_sizes_batch_matches_single(self) -> None:
        torch.manual_seed(0)
        model = MODELS.build(_small_model_cfg(dim=32, layers=1, base=8)).eval()
        batch = _samples([(48, 80), (32, 40)], bands=3)
        with torch.no_grad():
            data = model.data_preprocessor(batch, False)
            assert tuple(data['inputs'].shape[-2:]) == (48, 80)  # padded to 16, not 32
            out = model(**data, mode='predict')
            single = model.data_preprocessor(_samples([(48, 80)], bands=3), False)
            alone = model(**single, mode='predict')[0]
        assert [tuple(s.pred_sem_seg.shape) for s in out] == [(48, 80), (32, 40)]
        assert out[0].seg_logits.data.shape[0] == 1  # one sigmoid channel
        torch.testing.assert_close(out[0].seg_logits.data, alone.seg_logits.data)
        prob = out[1].seg_logits.data.sigmoid()
        assert torch.equal(out[1].pred_sem_seg.data, (prob > 0.5).long())

    def test_size_not_multiple_of_patch_is_refused(self) -> None:
        vit = DINOv2ViT(embed_dims=32, num_layers=1, num_heads=4)
        with pytest.raises(ValueError, match='multiple of the patch size'):
            vit(torch.randn(1, 3, 40, 48))

    def test_train_step_uses_bce_dice(self) -> None:
        model = MODELS.build(_small_model_cfg(dim=32, layers=1, base=8)).train()
        data = model.data_preprocessor(_samples([(32, 48)] * 2, bands=3), True)
        losses = model(**data, mode='loss')
        assert set(losses) == {'decode.loss_bce_dice', 'decode.acc_seg'}
        losses['decode.loss_bce_dice'].backward()
        assert all(p.grad is not None for p in model.parameters())


class TestMultispectral:

    def test_13_bands_forward(self) -> None:
        model = MODELS.build(_small_model_cfg(dim=32, layers=1, base=8, bands=13)).eval()
        with torch.no_grad():
            out = model(**model.data_preprocessor(_samples([(32, 48)], bands=13), False),
                        mode='predict')
        assert tuple(out[0].pred_sem_seg.shape) == (32, 48)
        assert model.backbone.vit.patch_embed.proj.weight.shape[1] == 13

    def test_13_band_oscd_config_model(self) -> None:
        cfg = Config.fromfile(str(ROOT / 'configs/changevit/changevit_tiny_256x256_80k_oscd.py'))
        assert cfg.model.backbone.in_channels == 13
        assert len(cfg.model.data_preprocessor.mean) == 13
        with torch.device('meta'):
            model = MODELS.build(cfg.model)
        assert model.backbone.resnet.conv1.weight.shape[1] == 13
        # 10 more bands in the ViT patch projection (16x16xD) and the ResNet stem (7x7x64)
        extra = 10 * (16 * 16 * EMBED['tiny'] + 7 * 7 * 64)
        assert sum(p.numel() for p in model.parameters()) == 11_753_728 + extra

    def test_rgb_resnet_stem_is_inflated_on_load(self, tmp_path) -> None:
        rgb = torchvision.models.resnet18().state_dict()
        torch.save(rgb, tmp_path / 'r18.pth')
        encoder = ChangeViTEncoder(
            vit=dict(type='DINOv2ViT', embed_dims=32, num_layers=1, num_heads=4),
            in_channels=13,
            resnet_init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'r18.pth')))
        encoder.resnet.init_weights()
        expected = rgb['conv1.weight'].mean(1, keepdim=True).expand(-1, 13, -1, -1) * 3 / 13
        torch.testing.assert_close(encoder.resnet.conv1.weight.data, expected)
        assert torch.equal(encoder.resnet.layer3[1].conv2.weight, rgb['layer3.1.conv2.weight'])


class TestPositionEmbedding:

    def test_orientation_on_a_non_square_grid(self) -> None:
        # an embedding that varies only along rows must still vary only along rows
        rows = torch.linspace(-1, 1, 16)[:, None, None].expand(16, 16, 4)
        out = resize_pos_embed(rows.reshape(1, 256, 4), (3, 5)).reshape(3, 5, 4)
        assert torch.allclose(out, out[:, :1].expand_as(out))
        assert not torch.allclose(out, out[:1].expand_as(out))

    def test_constant_embedding_is_kept_on_any_grid(self) -> None:
        const = torch.full((1, 256, 4), 0.7)
        for grid in [(3, 5), (16, 16), (20, 9)]:
            out = resize_pos_embed(const, grid)
            assert out.shape == (1, grid[0] * grid[1], 4)
            torch.testing.assert_close(out, torch.full_like(out, 0.7))

    def test_training_grid(self) -> None:
        vit = DINOv2ViT(embed_dims=8, num_layers=1, num_heads=2)
        assert vit.pos_embed_for((16, 16)) is vit.pos_embed
        # ChangeViT resamples even at 16x16: scale 16.1 / 16 is not the identity
        vit.always_interpolate = True
        official = vit.pos_embed_for((16, 16))
        assert official.shape == vit.pos_embed.shape
        assert not torch.allclose(official, vit.pos_embed, atol=1e-4)
        # offset 0 at the same size is the identity (plain bicubic at scale 1)
        torch.testing.assert_close(resize_pos_embed(vit.pos_embed, (16, 16), offset=0.0),
                                   vit.pos_embed.detach())

    def test_non_square_embedding_is_refused(self) -> None:
        with pytest.raises(ValueError, match='not a square'):
            resize_pos_embed(torch.zeros(1, 12, 4), (3, 4))


class TestLoss:

    def test_matches_official_formula(self) -> None:
        gen = torch.Generator().manual_seed(0)
        logits = torch.randn(2, 1, 8, 8, generator=gen)
        target = torch.randint(0, 2, (2, 8, 8), generator=gen)
        prob, t = logits.sigmoid()[:, 0], target.float()
        # official model/utils.py BCEDiceLoss on the sigmoid output
        dice = (2 * (prob * t).sum() + 1e-5) / (prob.sum() + t.sum() + 1e-5)
        expected = F.binary_cross_entropy(prob, t) + 1 - dice
        torch.testing.assert_close(BCEDiceLoss()(logits, target), expected)

    def test_ignored_pixels_are_left_out(self) -> None:
        gen = torch.Generator().manual_seed(1)
        logits = torch.randn(1, 1, 4, 6, generator=gen)
        target = torch.randint(0, 2, (1, 4, 6), generator=gen)
        ignored = target.clone()
        ignored[:, :, 3:] = 255
        torch.testing.assert_close(BCEDiceLoss()(logits, ignored),
                                   BCEDiceLoss()(logits[..., :3], target[..., :3]))


class TestSchedule:

    def test_learning_rate_follows_the_official_formula(self) -> None:
        from mmengine.registry import PARAM_SCHEDULERS
        cfg = _cfg('tiny')
        opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=cfg.optimizer.lr)
        schedulers = [PARAM_SCHEDULERS.build(dict(s, optimizer=opt))
                      for s in cfg.param_scheduler]
        base, total = 2e-4, 80000
        for it in range(400):
            # official model/utils.py adjust_learning_rate (poly, 200 warm-up iterations)
            official = base * (1 - it / total)**0.9
            if it < 200:
                official = base * 0.9 * (it + 1) / 200 + 0.1 * base
            lr = opt.param_groups[0]['lr']
            assert abs(lr - official) <= 0.0025 * official, (it, lr, official)
            opt.step()
            for scheduler in schedulers:
                scheduler.step()
        assert cfg.optimizer.type == 'Adam' and cfg.optimizer.betas == (0.9, 0.99)
        assert cfg.train_cfg.max_iters == total and cfg.train_dataloader.batch_size == 16
