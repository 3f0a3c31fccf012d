"""Tests of tools/analysis/get_flops.py and :mod:`mmrs.utils.flops`.

The selective scan's FLOPs are checked against numbers derived without the tool: from the
VMamba arch (stage widths, depths, strides) for the backbone, and from the shapes each SS2D
module really saw (forward hooks) for the whole model. The CLI runs once (a tiny MambaBCD
through ``--cfg-options``); the other cases call ``main()`` in-process.
"""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from mmrs.models.backbones.vmamba import SS2D
from mmrs.utils.flops import (analyze_complexity, build_model_from_config,
                              trace_selective_scan_as_op)
from ._runner import REPO_ROOT, run_tool

torch.set_num_threads(1)

SCRIPT = 'tools/analysis/get_flops.py'
MAMBABCD = 'configs/changemamba/mambabcd_tiny_256x256_20k_levircd.py'
#: MambaBCD with VMamba-T depths (2, 2, 4, 2) and dims 8 (widths 8/16/32/64), 16-wide decoder.
TINY_MAMBA = {'model.backbone.arch.dims': 8, 'model.decode_head.in_channels': [16, 32, 64, 128],
              'model.decode_head.channels': 16}
TINY_MAMBA_CLI = ['model.backbone.arch.dims=8', 'model.decode_head.in_channels=[16,32,64,128]',
                  'model.decode_head.channels=16']
FC_SIAM = 'configs/demo/fc_siam_diff_synthetic_demo.py'


def load_tool():
    spec = importlib.util.spec_from_file_location('get_flops', REPO_ROOT / SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def official_scan_flops(batch: int, channels: int, length: int, d_state: int) -> int:
    """VMamba's flops_selective_scan_fn with the D skip: 9 B L D N + B D L."""
    return 9 * batch * length * channels * d_state + batch * channels * length


@pytest.fixture(scope='module')
def tiny_mamba() -> torch.nn.Module:
    torch.manual_seed(0)
    _, model = build_model_from_config(MAMBABCD, TINY_MAMBA)
    return model.eval()


@pytest.fixture(scope='module')
def tiny_mamba_counts(tiny_mamba) -> tuple:
    """Counts of the tiny MambaBCD on one 64x64 pair with and without the scan, and the scan
    FLOPs expected from the shapes every SS2D module really saw (read by forward hooks)."""
    seen = []

    def hook(module: SS2D, args: tuple) -> None:
        x = args[0]
        b, h, w = (x.shape[0], *x.shape[2:]) if module.channel_first else x.shape[:3]
        seen.append(official_scan_flops(b, 4 * module.d_inner, h * w, module.d_state))

    handles = [m.register_forward_pre_hook(hook) for m in tiny_mamba.modules()
               if isinstance(m, SS2D)]
    inputs = (torch.randn(1, 2, 3, 64, 64), )
    try:
        with_scan = analyze_complexity(tiny_mamba, inputs, count_scan=True)
    finally:
        for h in handles:
            h.remove()
    return with_scan, analyze_complexity(tiny_mamba, inputs, count_scan=False), seen


class TestScanFlops:

    def test_backbone_scan_flops_follow_the_arch(self, tiny_mamba) -> None:
        # VMamba-T layout: stage i has depths[i] blocks of width dims*2^i at stride 4*2^i;
        # SS2D scans 4 directions x ssm_ratio*width channels, d_state 1; both dates.
        backbone = tiny_mamba.backbone
        size = 64
        counted = analyze_complexity(backbone, (torch.randn(2, 3, size, size), ))
        expected = 0
        for i, depth in enumerate((2, 2, 4, 2)):
            side = size // (4 * 2**i)
            expected += depth * official_scan_flops(2, 4 * 2 * 8 * 2**i, side * side, 1)
        assert counted.scan_flops == expected
        assert counted.by_operator['PythonOp.MmrsSelectiveScan'] == expected

    def test_scan_is_the_difference_to_plain(self, tiny_mamba, tiny_mamba_counts) -> None:
        with_scan, without, seen = tiny_mamba_counts
        assert len(seen) == 10 + 12  # 10 backbone blocks (once for both dates) + 12 decoder
        assert without.scan_flops == 0
        assert with_scan.scan_flops == sum(seen) > 0
        assert with_scan.flops - without.flops == sum(seen)
        assert with_scan.params == without.params == sum(
            p.numel() for p in tiny_mamba.parameters())

    def test_tracing_wrapper_keeps_numbers_and_restores(self, tiny_mamba) -> None:
        from mmrs.models.backbones.vmamba import ss2d
        original = ss2d.selective_scan
        x = torch.randn(1, 2, 3, 32, 32)
        ref = tiny_mamba(x)
        block = tiny_mamba.backbone.layers[0].blocks[0].op
        inp = torch.randn(1, 8, 8, 8, requires_grad=True)
        ref_grad = torch.autograd.grad(block(inp).square().sum(), inp)[0]
        with trace_selective_scan_as_op():
            assert ss2d.selective_scan is not original
            # the Function's forward runs without autograd (the portable scan's cumsum form)
            torch.testing.assert_close(tiny_mamba(x), ref)
            grad = torch.autograd.grad(block(inp).square().sum(), inp)[0]
        torch.testing.assert_close(grad, ref_grad)
        assert ss2d.selective_scan is original


class TestGetFlopsTool:

    def test_cli_tiny_mambabcd(self, tmp_path: Path, tiny_mamba_counts) -> None:
        out = tmp_path / 'flops.json'
        result = run_tool(SCRIPT, MAMBABCD, '--shape', '64', '64', '--out', str(out),
                          '--cfg-options', *TINY_MAMBA_CLI)
        summary = json.loads(out.read_text())
        direct = tiny_mamba_counts[0]  # the in-process count of the same architecture
        assert (summary['flops'], summary['selective_scan_flops'], summary['params']) == (
            direct.flops, direct.scan_flops, direct.params)
        assert summary['input_shape'] == [1, 2, 3, 64, 64]
        assert summary['selective_scan_counted'] is True
        assert 0 < summary['selective_scan_flops'] < summary['flops']
        assert summary['flops'] == sum(summary['flops_by_operator'].values())
        assert 'backbone' in result.stdout and summary['flops_str'] in result.stdout

    def test_fc_siam_diff_counts_scale_with_pixels(self, tmp_path: Path) -> None:
        tool = load_tool()
        small = tool.main([FC_SIAM, '--shape', '32', '32'])
        large = tool.main([FC_SIAM, '--shape', '64', '128', '--out', str(tmp_path / 'f.json')])
        _, model = build_model_from_config(FC_SIAM)
        assert small['params'] == large['params'] == sum(p.numel() for p in model.parameters())
        assert small['selective_scan_flops'] == 0  # no scan in FC-Siam-diff
        # a fully convolutional net: every counted op is per pixel -> 8x the pixels, 8x FLOPs
        assert large['flops'] == 8 * small['flops'] > 0
        assert json.loads((tmp_path / 'f.json').read_text())['flops'] == large['flops']

    def test_changevit_traces_with_resampled_positions(self) -> None:
        """ChangeViT resamples its position embedding to the token grid; under the FLOP
        counter's tracing the grid is made of tensors (a bicubic resize used to fail)."""
        tool = load_tool()
        opts = ['model.backbone.detail_base_channels=8', 'model.backbone.vit.embed_dims=32',
                'model.backbone.vit.num_heads=4', 'model.decode_head.in_channels=[8,16,32,32]']
        cfg = 'configs/changevit/changevit_tiny_256x256_80k_levircd.py'
        small = tool.main([cfg, '--shape', '64', '64', '--cfg-options', *opts])
        large = tool.main([cfg, '--shape', '96', '96', '--cfg-options', *opts])
        assert small['selective_scan_flops'] == 0 and 0 < small['flops'] < large['flops']

    def test_bad_inputs_name_the_problem(self) -> None:
        tool = load_tool()
        with pytest.raises(SystemExit, match='missing.py'):
            tool.main(['configs/missing.py'])
        with pytest.raises(SystemExit, match=r'failed on an input of shape \(1, 2, 3, 40, 40\)'):
            tool.main([MAMBABCD, '--shape', '40', '40', '--cfg-options', *TINY_MAMBA_CLI])
