"""Tests of the VMamba backbone (ChangeMamba's encoder)."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from mmrs.models.backbones import VMamba, inflate_rgb_stem
from mmrs.models.backbones.vmamba import ARCH_SETTINGS, SS2D
from mmrs.registry import MODELS

# Parameter and state-dict entry counts of the official ``Backbone_VSSM(out_indices=(0, 1, 2, 3))``
# built from ChangeMamba's vssm1 configs (classification/models/vmamba.py with its CUDA and triton
# imports stubbed, norm_layer 'ln' and 'ln2d' alike). The MambaBCD totals of the paper add the
# ChangeDecoder and the classifier to these.
OFFICIAL = {'tiny': (27_993_984, 208), 'small': (49_380_096, 406), 'base': (87_534_592, 406)}
# A few official key shapes (Tiny): stem, SS2D parameters of the first block, downsample, out norm.
OFFICIAL_TINY_SHAPES = {
    'patch_embed.0.weight': (48, 3, 3, 3), 'patch_embed.7.bias': (96,),
    'layers.0.blocks.0.op.in_proj.weight': (192, 96),
    'layers.0.blocks.0.op.conv2d.weight': (192, 1, 3, 3),
    'layers.0.blocks.0.op.x_proj_weight': (4, 8, 192),  # dt_rank 6 + 2 * d_state 1
    'layers.0.blocks.0.op.dt_projs_weight': (4, 192, 6),
    'layers.0.blocks.0.op.dt_projs_bias': (4, 192), 'layers.0.blocks.0.op.A_logs': (768, 1),
    'layers.0.blocks.0.op.Ds': (768,), 'layers.0.blocks.0.op.out_norm.weight': (192,),
    'layers.0.blocks.0.op.out_proj.weight': (96, 192),
    'layers.0.blocks.0.mlp.fc1.weight': (384, 96), 'layers.2.downsample.1.weight': (768, 384, 3, 3),
    'layers.2.downsample.3.weight': (768,), 'outnorm3.weight': (768,),
}
CONFIG = Path(__file__).resolve().parents[2] / 'configs/_base_/models/vmamba_backbones.py'
TINY_ARCH = dict(depths=(1, 1, 2, 1), dims=8, ssm_d_state=2, drop_path_rate=0.1)


def tiny(**kwargs) -> VMamba:
    kwargs.setdefault('arch', TINY_ARCH)
    return VMamba(scan_backend='torch', **kwargs)


class TestArchSettings:

    @pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
    def test_parameter_count_equals_official(self, arch: str) -> None:
        with torch.device('meta'):
            model = MODELS.build(dict(type='VMamba', arch=arch))
        assert sum(p.numel() for p in model.parameters()) == OFFICIAL[arch][0]
        assert len(model.state_dict()) == OFFICIAL[arch][1]

    @pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
    def test_base_config_builds_official_size(self, arch: str) -> None:
        cfg = Config.fromfile(str(CONFIG))
        with torch.device('meta'):
            model = MODELS.build(cfg[f'vmamba_{arch}'])
        assert sum(p.numel() for p in model.parameters()) == OFFICIAL[arch][0]

    def test_official_key_shapes(self) -> None:
        with torch.device('meta'):
            sd = VMamba('tiny').state_dict()
        for key, shape in OFFICIAL_TINY_SHAPES.items():
            assert tuple(sd[key].shape) == shape, key
        assert not any(k.startswith('classifier') for k in sd)

    def test_changemamba_settings(self) -> None:
        t, s, b = (ARCH_SETTINGS[a] for a in ('tiny', 'small', 'base'))
        assert (t['depths'], t['dims'], t['drop_path_rate']) == ((2, 2, 4, 2), 96, 0.2)
        assert (s['depths'], s['dims'], s['drop_path_rate']) == ((2, 2, 15, 2), 96, 0.3)
        assert (b['depths'], b['dims'], b['drop_path_rate']) == ((2, 2, 15, 2), 128, 0.6)
        for cfg in (t, s, b):
            assert cfg['forward_type'] == 'v3noz' and cfg['ssm_d_state'] == 1
            assert not cfg['ssm_conv_bias'] and cfg['mlp_ratio'] == 4.0

    def test_drop_path_is_linear_over_all_blocks(self) -> None:
        with torch.device('meta'):
            model = VMamba('tiny')
        probs = [blk.drop_path.drop_prob for layer in model.layers for blk in layer.blocks]
        assert probs == pytest.approx(torch.linspace(0, 0.2, 10).tolist())

    def test_rejects_bad_settings(self) -> None:
        with pytest.raises(ValueError, match='arch'):
            VMamba('huge')
        with pytest.raises(ValueError, match='unknown keys'):
            VMamba(dict(depths=(1,), dims=8, heads=2))
        with pytest.raises(ValueError, match='forward_type'):
            tiny(arch=dict(TINY_ARCH, forward_type='v05softmax'))
        with pytest.raises(ValueError, match='out_indices'):
            tiny(out_indices=(4,))


class TestForward:

    @pytest.mark.parametrize('size', [(64, 64), (96, 64)])
    def test_four_bands_forward_backward(self, size: tuple[int, int]) -> None:
        torch.manual_seed(0)
        model = tiny(in_channels=4)
        x = torch.randn(2, 4, *size, requires_grad=True)
        outs = model(x)
        h, w = size
        assert [tuple(o.shape) for o in outs] == [
            (2, 8 * 2**i, h // (4 * 2**i), w // (4 * 2**i)) for i in range(4)]
        assert model.out_channels == [8, 16, 32, 64]
        sum(o.square().mean() for o in outs).backward()
        assert all(torch.isfinite(o).all() for o in outs)
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
        for name, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name

    def test_out_indices_and_norms(self) -> None:
        model = tiny(out_indices=(1, 3)).eval()
        assert hasattr(model, 'outnorm1') and not hasattr(model, 'outnorm0')
        full = tiny().eval()
        full.load_state_dict(model.state_dict(), strict=False)
        x = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            a, b = model(x), full(x)
        torch.testing.assert_close(a[0], b[1])
        torch.testing.assert_close(a[1], b[3])

    @pytest.mark.parametrize('size', [(64, 48), (40, 64)])
    def test_size_not_divisible_by_32_raises(self, size: tuple[int, int]) -> None:
        with pytest.raises(ValueError, match='divisible by 32'):
            tiny()(torch.randn(1, 3, *size))

    def test_wrong_bands_raises(self) -> None:
        with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
            tiny()(torch.randn(1, 4, 32, 32))

    def test_channel_first_layout_is_equivalent(self) -> None:
        torch.manual_seed(0)
        last = tiny().eval()
        first = tiny(arch=dict(TINY_ARCH, norm_layer='ln2d')).eval()
        first.load_state_dict(last.state_dict(), strict=True)
        x = torch.randn(2, 3, 32, 64)
        with torch.no_grad():
            for a, b in zip(last(x), first(x)):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def naive_ss2d(op: SS2D, x: torch.Tensor) -> torch.Tensor:
    """SS2D from the paper, one direction and one position at a time (``x``: (B, H, W, C))."""
    b, h, w, _ = x.shape
    u = F.silu(F.conv2d(F.linear(x, op.in_proj.weight).permute(0, 3, 1, 2), op.conv2d.weight,
                        op.conv2d.bias, padding=1, groups=op.d_inner))
    d, n, r = op.d_inner, op.d_state, op.dt_rank
    # Pixel order of each direction: row-major, column-major, and both reversed.
    rows = [(i, j) for i in range(h) for j in range(w)]
    cols = [(i, j) for j in range(w) for i in range(h)]
    orders = [rows, cols, rows[::-1], cols[::-1]]
    a = -torch.exp(op.A_logs).view(4, d, n)
    y = torch.zeros(b, d, h, w)
    for k, order in enumerate(orders):
        state = torch.zeros(b, d, n)
        for i, j in order:
            ut = u[:, :, i, j]
            proj = ut @ op.x_proj_weight[k].T
            dt = F.softplus(proj[:, :r] @ op.dt_projs_weight[k].T + op.dt_projs_bias[k])
            bt, ct = proj[:, r:r + n], proj[:, r + n:]
            decay = torch.exp(dt[..., None] * a[k])
            state = decay * state + dt[..., None] * bt[:, None] * ut[..., None]
            y[:, :, i, j] += (state * ct[:, None]).sum(-1) + op.Ds.view(4, d)[k] * ut
    y = F.layer_norm(y.permute(0, 2, 3, 1), (d,), op.out_norm.weight, op.out_norm.bias)
    return F.linear(y, op.out_proj.weight)


class TestSS2D:

    def test_equals_sequential_four_direction_oracle(self) -> None:
        torch.manual_seed(0)
        op = SS2D(6, d_state=3, ssm_ratio=2.0, dt_rank=2, conv_bias=True, forward_type='v3noz',
                  scan_backend='torch').eval()
        with torch.no_grad():
            op.A_logs.add_(0.3 * torch.randn_like(op.A_logs))
            op.Ds.add_(torch.randn_like(op.Ds))
            op.out_norm.weight.add_(0.1 * torch.randn_like(op.out_norm.weight))
            x = torch.randn(2, 4, 5, 6)
            torch.testing.assert_close(op(x), naive_ss2d(op, x), rtol=1e-5, atol=1e-5)

    def test_gate_variant(self) -> None:
        op = SS2D(4, d_state=2, forward_type='v2', scan_backend='torch')
        assert op.in_proj.weight.shape == (16, 4)  # x and the gate z
        assert op(torch.randn(1, 3, 3, 4)).shape == (1, 3, 3, 4)


class TestStemInflation:

    def test_mean_rule_keeps_grey_response(self) -> None:
        conv = torch.nn.Conv2d(3, 5, 3, padding=1)
        grey = torch.randn(2, 1, 8, 8)
        for n in (1, 4, 13):
            w = inflate_rgb_stem(conv.weight.detach(), n)
            assert w.shape == (5, n, 3, 3)
            out = F.conv2d(grey.expand(-1, n, -1, -1), w, conv.bias, padding=1)
            torch.testing.assert_close(out, conv(grey.expand(-1, 3, -1, -1)), rtol=1e-5, atol=1e-5)

    def test_cycle_rule_keeps_tiled_rgb_response(self) -> None:
        conv = torch.nn.Conv2d(3, 5, 3, padding=1)
        rgb = torch.randn(2, 3, 8, 8)
        w = inflate_rgb_stem(conv.weight.detach(), 6, mode='cycle')
        torch.testing.assert_close(F.conv2d(rgb.repeat(1, 2, 1, 1), w, conv.bias, padding=1),
                                   conv(rgb), rtol=1e-5, atol=1e-5)
        assert inflate_rgb_stem(conv.weight, 3) is conv.weight

    def test_pretrained_rgb_checkpoint_inflates_on_init(self, tmp_path: Path) -> None:
        torch.manual_seed(0)
        rgb_model = tiny().eval()
        ckpt = tmp_path / 'mambabcd.pth'
        # Official layouts: {'model': ...} (VMamba ImageNet) and 'encoder.'-prefixed MambaBCD keys.
        torch.save({'model': {f'encoder.{k}': v for k, v in rgb_model.state_dict().items()}}, ckpt)
        model = tiny(in_channels=6, stem_inflation='cycle',
                     init_cfg=dict(type='Pretrained', checkpoint=str(ckpt), prefix='encoder.'))
        model.init_weights()
        model.eval()
        rgb = torch.randn(1, 3, 32, 32)
        with torch.no_grad():
            for a, b in zip(model(rgb.repeat(1, 2, 1, 1)), rgb_model(rgb)):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)

    def test_bad_mode(self) -> None:
        with pytest.raises(ValueError, match='mode'):
            inflate_rgb_stem(torch.zeros(2, 3, 3, 3), 4, mode='random')


def test_official_tiny_dt_rank_rule() -> None:
    """``dt_rank='auto'`` is ``ceil(d_model / 16)`` per stage (6, 12, 24, 48 for Tiny)."""
    with torch.device('meta'):
        model = VMamba('tiny')
    assert [layer.blocks[0].op.dt_rank for layer in model.layers] == [
        math.ceil(c / 16) for c in (96, 192, 384, 768)]
