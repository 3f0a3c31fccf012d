"""CLIPImageBackbone: the open_clip image tower as a multi-scale backbone.

Oracles: open_clip's own ``forward_intermediates`` (ViT tokens, ResNet stages) on a tower
built by ``open_clip.create_model`` with the same weights; timm's ``resample_abs_pos_embed``
for the positional-embedding resampling; explicit padding for sizes that are not a multiple
of the patch; the 3-band tower for the inflated multi-band stems.
"""
import copy
from pathlib import Path

import open_clip
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from timm.layers import resample_abs_pos_embed

import mmrs.models  # noqa: F401  (fills the registry)
from mmrs.models.backbones.clip_backbone import CLIPImageBackbone, resample_pos_embed
from mmrs.registry import MODELS

torch.set_num_threads(1)
CONFIG = Path(__file__).resolve().parents[2] / 'configs' / '_base_' / 'models' / 'clip_upernet.py'

#: A 4-block, 32-wide ViT with patch 16 at 64 px (native token grid 4x4).
VIT_CFG = dict(embed_dim=16, vision_cfg=dict(image_size=64, layers=4, width=32, patch_size=16,
                                             head_width=16))
#: A ModifiedResNet with one bottleneck per stage and an 8-wide stem (stages 32..256 wide).
RN_CFG = dict(embed_dim=16, vision_cfg=dict(image_size=64, layers=[1, 1, 1, 1], width=8,
                                            head_width=8))
TEXT_CFG = dict(context_length=8, vocab_size=64, width=16, heads=2, layers=1)


def backbone(name: str = 'ViT-B-16', seed: int = 0, **kwargs) -> CLIPImageBackbone:
    torch.manual_seed(seed)
    cfg = VIT_CFG if name.startswith('ViT') else RN_CFG
    kwargs.setdefault('model_cfg', cfg)
    return CLIPImageBackbone(model_name=name, **kwargs).eval()


def reference_clip(name: str, seed: int = 1, image_size: int = 64) -> torch.nn.Module:
    """A whole tiny open_clip CLIP, built by open_clip itself (the independent tower)."""
    torch.manual_seed(seed)
    cfg = copy.deepcopy(VIT_CFG if name.startswith('ViT') else RN_CFG)
    cfg['vision_cfg']['image_size'] = image_size
    model = open_clip.create_model(name, pretrained=None, text_cfg=TEXT_CFG, **cfg)
    for param in model.parameters():  # open_clip leaves some zero (e.g. bn3): randomise all
        torch.nn.init.normal_(param, std=0.2)
    for buf_name, buf in model.named_buffers():
        if 'running_var' in buf_name:
            buf.uniform_(0.5, 2.0)
        elif 'running_mean' in buf_name:
            buf.normal_(0, 0.1)
    return model.eval()


def visual_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k[len('visual.'):]: v for k, v in model.state_dict().items()
            if k.startswith('visual.')}


class TestShapes:

    @pytest.mark.parametrize('size', [(64, 64), (80, 48)])
    def test_vit_pyramid(self, size: tuple[int, int]) -> None:
        net = backbone(out_indices=(0, 1, 2, 3))
        assert net.out_strides == [4, 8, 16, 32]
        assert net.out_channels == [32] * 4
        outs = net(torch.randn(2, 3, *size))
        assert [tuple(o.shape) for o in outs] == [
            (2, 32, -(-size[0] // s), -(-size[1] // s)) for s in (4, 8, 16, 32)]

    @pytest.mark.parametrize('size', [(64, 64), (80, 48)])
    def test_resnet_stages(self, size: tuple[int, int]) -> None:
        net = backbone('RN50')
        assert net.out_strides == [4, 8, 16, 32]
        assert net.out_channels == [32, 64, 128, 256]
        outs = net(torch.randn(2, 3, *size))
        assert [tuple(o.shape) for o in outs] == [
            (2, c, -(-size[0] // s), -(-size[1] // s)) for c, s in zip(net.out_channels,
                                                                        net.out_strides)]

    def test_vit_without_pyramid_and_patch_32(self) -> None:
        net = backbone(out_indices=(1, 3), feature_pyramid=False)
        assert net.out_strides == [16, 16]
        assert [o.shape[-2:] for o in net(torch.randn(1, 3, 80, 48))] == [(5, 3)] * 2
        cfg = copy.deepcopy(VIT_CFG)
        cfg['vision_cfg'].update(patch_size=32)
        net32 = backbone('ViT-B-32', model_cfg=cfg)
        assert net32.out_strides == [4, 8, 16, 32]
        assert [o.shape[-1] for o in net32(torch.randn(1, 3, 64, 64))] == [16, 8, 4, 2]

    @pytest.mark.parametrize('name', ['ViT-B-16', 'RN50'])
    def test_size_not_a_multiple_is_padded(self, name: str) -> None:
        """70x50 equals the bottom/right zero-padded input, cropped to ceil(size / stride)."""
        net = backbone(name)
        x = torch.randn(1, 3, 70, 50)
        padded = torch.zeros(1, 3, 96, 64)
        padded[..., :70, :50] = x
        with torch.no_grad():
            outs, ref = net(x), net(padded)
        for out, full, stride in zip(outs, ref, net.out_strides):
            h, w = -(-70 // stride), -(-50 // stride)
            assert out.shape[-2:] == (h, w)
            if name == 'RN50':  # the ResNet pads to 96x64 itself: identical
                torch.testing.assert_close(out, full[..., :h, :w])
        if name.startswith('ViT'):  # the ViT pads to 80x64 (its token grid is 5x4)
            padded80 = padded[..., :80, :]
            with torch.no_grad():
                ref80 = net(padded80)
            for out, full in zip(outs, ref80):
                torch.testing.assert_close(out, full[..., :out.shape[-2], :out.shape[-1]])

    def test_bad_inputs(self) -> None:
        net = backbone()
        with pytest.raises(ValueError, match='expects'):
            net(torch.randn(1, 4, 64, 64))
        with pytest.raises(ValueError, match='out of range'):
            backbone(out_indices=(0, 4))
        with pytest.raises(ValueError, match='pyramid scales'):
            backbone(out_indices=(0, 1, 3))


class TestOpenCLIPParity:

    @pytest.mark.parametrize('final_norm', [False, True])
    @pytest.mark.parametrize('size', [(64, 64), (80, 48)])
    def test_vit_block_tokens(self, size: tuple[int, int], final_norm: bool) -> None:
        ref = reference_clip('ViT-B-16').visual
        net = backbone(out_indices=(0, 2, 3), feature_pyramid=False, final_norm=final_norm)
        net.load_visual_state_dict(ref.state_dict())  # proj, ln_post (unless used) ignored
        x = torch.randn(2, 3, *size)
        grid = (size[0] // 16, size[1] // 16)
        with torch.no_grad():
            # open_clip adds its positional embedding as it is: give it timm's resampling
            pos = resample_abs_pos_embed(ref.positional_embedding[None], list(grid), [4, 4],
                                         num_prefix_tokens=1, antialias=False)[0]
            ref.positional_embedding.data = pos
            expected = ref.forward_intermediates(x, indices=[0, 2, 3], intermediates_only=True,
                                                 normalize_intermediates=final_norm)
            outs = net(x)
        for out, exp in zip(outs, expected['image_intermediates']):
            torch.testing.assert_close(out, exp, rtol=1e-4, atol=1e-5)

    def test_resnet_stages(self) -> None:
        ref = reference_clip('RN50').visual
        net = backbone('RN50')
        net.load_visual_state_dict(ref.state_dict())  # attnpool.* ignored
        x = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            expected = ref.forward_intermediates(x, indices=[1, 2, 3, 4],
                                                 intermediates_only=True)
            outs = net(x)
        for out, exp in zip(outs, expected['image_intermediates']):
            torch.testing.assert_close(out, exp, rtol=1e-4, atol=1e-5)


class TestPositionalEmbedding:

    def test_native_size_is_identity(self) -> None:
        net = backbone()
        pos = net.visual.positional_embedding
        assert net.pos_embed_for((4, 4)) is pos
        torch.testing.assert_close(resample_pos_embed(pos.detach(), (4, 4), (4, 4)),
                                   pos.detach(), rtol=0, atol=1e-6)

    @pytest.mark.parametrize('antialias', [False, True])
    def test_matches_timm(self, antialias: bool) -> None:
        pos = torch.randn(1 + 7 * 7, 12)
        for grid in [(3, 5), (10, 14)]:
            expected = resample_abs_pos_embed(pos[None], list(grid), [7, 7],
                                              num_prefix_tokens=1, antialias=antialias)[0]
            torch.testing.assert_close(resample_pos_embed(pos, (7, 7), grid, antialias),
                                       expected)
            assert torch.equal(resample_pos_embed(pos, (7, 7), grid)[0], pos[0])


class TestCheckpoint:

    @pytest.mark.parametrize('name', ['ViT-B-16', 'RN50'])
    def test_full_clip_state_dict_loads_strictly(self, name: str, tmp_path: Path) -> None:
        pytest.importorskip('mmrs.models.clip.layouts')
        clip = reference_clip(name)
        path = tmp_path / 'clip.pt'
        torch.save(clip.state_dict(), path)
        net = backbone(name, checkpoint=str(path), checkpoint_layout='openclip')
        net.init_weights()
        expected = visual_state(clip)
        own = net.visual.state_dict()
        assert own, 'empty tower'
        for key, value in own.items():
            torch.testing.assert_close(value, expected[key], rtol=0, atol=0, msg=key)
        ignored = {k for k in expected if k not in own}
        if name == 'RN50':
            assert ignored and all(k.startswith('attnpool.') for k in ignored)
        else:
            assert ignored == {'proj', 'ln_post.weight', 'ln_post.bias'}

    def test_strict_on_visual_keys(self) -> None:
        state = visual_state(reference_clip('ViT-B-16'))
        net = backbone()
        missing = dict(state)
        del missing['transformer.resblocks.1.mlp.c_fc.weight']
        with pytest.raises(KeyError, match='c_fc.weight'):
            net.load_visual_state_dict(missing)
        extra = dict(state, **{'transformer.resblocks.9.ln_1.weight': torch.ones(32)})
        with pytest.raises(KeyError, match='resblocks.9'):
            net.load_visual_state_dict(extra)
        wrong = dict(state, **{'ln_pre.weight': torch.ones(31)})
        with pytest.raises(ValueError, match='ln_pre.weight'):
            net.load_visual_state_dict(wrong)

    def test_pruned_blocks_and_other_grid(self) -> None:
        """Blocks after the last output are ignored; a 2x2-grid embedding is resampled."""
        clip = reference_clip('ViT-B-16', image_size=32)
        net = backbone(out_indices=(0, 1), feature_pyramid=False)
        assert len(net.visual.transformer.resblocks) == 2
        net.load_visual_state_dict(visual_state(clip))
        expected = resample_abs_pos_embed(clip.visual.positional_embedding[None], [4, 4],
                                          [2, 2], num_prefix_tokens=1, antialias=False)[0]
        torch.testing.assert_close(net.visual.positional_embedding.data, expected)

    def test_no_visual_keys(self, tmp_path: Path) -> None:
        pytest.importorskip('mmrs.models.clip.layouts')
        clip = reference_clip('ViT-B-16')
        state = {k: v for k, v in clip.state_dict().items() if not k.startswith('visual.')}
        torch.save(state, tmp_path / 'text_only.pt')
        net = backbone(checkpoint=str(tmp_path / 'text_only.pt'), checkpoint_layout='openclip')
        with pytest.raises((KeyError, ValueError), match='text_only.pt'):
            net.init_weights()


class TestMultiBand:

    @pytest.mark.parametrize('name', ['ViT-B-16', 'RN50'])
    def test_zero_inflation_keeps_rgb_features(self, name: str) -> None:
        rgb = backbone(name, feature_pyramid=False)  # the ResNet has no pyramid anyway
        four = backbone(name, seed=5, in_channels=4, feature_pyramid=False)
        four.load_visual_state_dict(rgb.visual.state_dict())  # 3-band stem inflated
        x = torch.randn(2, 3, 64, 64)
        x4 = torch.cat([x, torch.randn(2, 1, 64, 64)], dim=1)  # any 4th band
        with torch.no_grad():
            for a, b in zip(rgb(x), four(x4)):
                torch.testing.assert_close(a, b)

    def test_random_init_follows_the_rule(self) -> None:
        """Same seed, 3 vs 4 bands: the 4-band random stem is the inflated 3-band one."""
        rgb, four = backbone(seed=3), backbone(seed=3, in_channels=4)
        x = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            for a, b in zip(rgb(x), four(torch.cat([x, x[:, :1]], dim=1))):
                torch.testing.assert_close(a, b)

    def test_mean_and_cycle(self) -> None:
        rgb = backbone(feature_pyramid=False)
        grey = torch.randn(1, 1, 64, 64)
        mean5 = backbone(in_channels=5, stem_inflation='mean', feature_pyramid=False)
        mean5.load_visual_state_dict(rgb.visual.state_dict())
        cycle6 = backbone(in_channels=6, stem_inflation='cycle', feature_pyramid=False)
        cycle6.load_visual_state_dict(rgb.visual.state_dict())
        x = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            for a, b in zip(rgb(grey.expand(-1, 3, -1, -1)), mean5(grey.expand(-1, 5, -1, -1))):
                torch.testing.assert_close(a, b)
            for a, b in zip(rgb(x), cycle6(torch.cat([x, x], dim=1))):
                torch.testing.assert_close(a, b)
        with pytest.raises(ValueError, match="'zero' needs"):
            backbone(in_channels=1)


class TestFreezing:

    def test_vit_frozen_stages(self) -> None:
        net = backbone(frozen_stages=1).train()
        sum(o.sum() for o in net(torch.randn(2, 3, 64, 64))).backward()
        vis = net.visual
        frozen = [vis.conv1.weight, vis.class_embedding, vis.positional_embedding,
                  *vis.ln_pre.parameters(), *vis.transformer.resblocks[0].parameters()]
        assert all(p.grad is None and not p.requires_grad for p in frozen)
        trained = [*vis.transformer.resblocks[1].parameters(), *net.pyramid.parameters()]
        assert all(p.grad is not None for p in trained)

    @pytest.mark.parametrize('name', ['ViT-B-16', 'RN50'])
    def test_frozen_tower(self, name: str) -> None:
        net = backbone(name, frozen=True).train()
        assert not any(m.training for m in net.visual.modules())
        outs = net(torch.randn(2, 3, 64, 64))
        if net.pyramid is None:  # the ResNet: nothing left to train
            assert not any(o.requires_grad for o in outs)
            return
        sum(o.sum() for o in outs).backward()
        assert all(p.grad is None for p in net.visual.parameters())
        assert all(p.grad is not None for p in net.pyramid.parameters())

    def test_resnet_frozen_stages_keeps_bn_statistics(self) -> None:
        net = backbone('RN50', frozen_stages=1).train()
        before = net.visual.layer1[0].bn1.running_mean.clone()
        before2 = net.visual.layer2[0].bn1.running_mean.clone()
        sum(o.sum() for o in net(torch.randn(2, 3, 64, 64) * 3 + 1)).backward()
        assert torch.equal(net.visual.layer1[0].bn1.running_mean, before)
        assert not torch.equal(net.visual.layer2[0].bn1.running_mean, before2)
        assert net.visual.conv1.weight.grad is None
        assert all(p.grad is None for p in net.visual.layer1.parameters())
        assert all(p.grad is not None for p in net.visual.layer2.parameters())

    def test_gradient_checkpointing_is_exact(self) -> None:
        x = torch.randn(1, 3, 64, 64)
        grads = []
        for with_cp in (False, True):
            net = backbone(with_cp=with_cp).train()
            sum(o.square().mean() for o in net(x)).backward()
            grads.append(net.visual.transformer.resblocks[0].mlp.c_fc.weight.grad)
        torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize('name', ['ViT-B-16', 'RN50'])
def test_upernet_config_forward_backward(name: str) -> None:
    """The example config (tiny tower) trains one step with a batch of 2 at 64x64."""
    init_default_scope('mmrs')
    cfg = Config.fromfile(str(CONFIG))
    model_cfg = copy.deepcopy(cfg.model)
    if name == 'RN50':
        model_cfg.backbone.update(model_name='RN50', model_cfg=RN_CFG, out_indices=None)
        model_cfg.decode_head.in_channels = [32, 64, 128, 256]
    else:
        cfg_vit = copy.deepcopy(VIT_CFG)
        cfg_vit['vision_cfg']['layers'] = 12
        model_cfg.backbone.update(model_cfg=cfg_vit)
        model_cfg.decode_head.in_channels = [32] * 4
    model_cfg.decode_head.update(channels=16, num_classes=3)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    model.train()
    g = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64),
                                             pad_shape=(64, 64)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, 64, 64), generator=g))
        samples.append(sample)
    images = [torch.randint(0, 256, (3, 64, 64), generator=g, dtype=torch.uint8)
              for _ in range(2)]
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples), True)
    assert data['inputs'].shape == (2, 3, 64, 64)
    losses = model(**data, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing[:10]


def test_siamese_change_detector_with_clip_backbone() -> None:
    """The backbone in a change detector (btc_r18_upernet.py with the CLIP tower swapped in):
    a training step on a batch of 2 pairs, then prediction at a size not a multiple of 32."""
    from mmrs.structures import ChangeDataSample
    init_default_scope('mmrs')
    cfg = Config.fromfile(str(CONFIG.parent / 'btc_r18_upernet.py'))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone = dict(type='CLIPImageBackbone', model_name='ViT-B-16', model_cfg=VIT_CFG,
                              out_indices=(0, 1, 2, 3))
    model_cfg.neck.in_channels = [32] * 4
    model_cfg.decode_head.update(in_channels=[32] * 4, channels=16)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    g = torch.Generator().manual_seed(0)

    def batch(h: int, w: int) -> dict:
        samples = []
        for _ in range(2):
            sample = ChangeDataSample(metainfo=dict(ori_shape=(h, w), img_shape=(h, w)))
            sample.gt_sem_seg = PixelData(data=torch.randint(0, 2, (1, h, w), generator=g))
            samples.append(sample)
        inputs = [torch.randint(0, 256, (2, 3, h, w), generator=g, dtype=torch.uint8)
                  for _ in range(2)]
        return dict(inputs=inputs, data_samples=samples)

    model.train()
    losses = model(**model.data_preprocessor(batch(64, 64), True), mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert torch.isfinite(total)
    assert all(p.grad is not None for p in model.backbone.parameters())
    model.eval()
    with torch.no_grad():
        preds = model.test_step(batch(80, 48))
    assert [tuple(p.pred_sem_seg.data.shape[-2:]) for p in preds] == [(80, 48)] * 2
