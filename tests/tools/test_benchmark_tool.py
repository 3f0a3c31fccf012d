"""Tests of tools/analysis/benchmark.py on tiny models (CPU, one thread, a few iterations).

Timings are never asserted against a speed; only that they are positive and consistent with
each other (throughput = batch / median time), that the train phase really updates the
weights, and that bad options stop the tool with a message.
"""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from mmrs.utils.flops import build_model_from_config
from ._runner import REPO_ROOT, run_tool

torch.set_num_threads(1)

SCRIPT = 'tools/analysis/benchmark.py'
FC_SIAM = 'configs/demo/fc_siam_diff_synthetic_demo.py'
MAMBABCD = 'configs/changemamba/mambabcd_tiny_256x256_20k_levircd.py'
TINY_MAMBA_CLI = ['model.backbone.arch.dims=8', 'model.decode_head.in_channels=[16,32,64,128]',
                  'model.decode_head.channels=16']


def load_tool():
    spec = importlib.util.spec_from_file_location('benchmark_tool', REPO_ROOT / SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_phase(phase: dict, batch: int) -> None:
    assert 0 < phase['min_s'] <= phase['median_s']
    assert phase['mean_s'] > 0 and phase['peak_memory_mib'] > 0
    assert phase['images_per_s'] == pytest.approx(batch / phase['median_s'], rel=1e-3)


def test_cli_tiny_mambabcd(tmp_path: Path) -> None:
    out = tmp_path / 'bench.json'
    run_tool(SCRIPT, MAMBABCD, '--shape', '32', '32', '--batch', '2', '--iters', '2',
             '--warmup', '1', '--device', 'cpu', '--threads', '1', '--out', str(out),
             '--cfg-options', *TINY_MAMBA_CLI)
    summary = json.loads(out.read_text())
    assert summary['input_shape'] == [2, 2, 3, 32, 32]
    assert (summary['device'], summary['iters'], summary['warmup']) == ('cpu', 2, 1)
    for phase in ('inference', 'train'):
        check_phase(summary[phase], batch=2)
    # CPU memory is the process peak RSS so far: it can only grow from one phase to the next
    assert summary['train']['peak_memory_mib'] >= summary['inference']['peak_memory_mib']


def test_in_process_fc_siam_diff_and_skip_train(tmp_path: Path) -> None:
    tool = load_tool()
    summary = tool.main([FC_SIAM, '--shape', '64', '64', '--batch', '3', '--iters', '2',
                         '--warmup', '0', '--device', 'cpu', '--skip-train'])
    check_phase(summary['inference'], batch=3)
    assert 'train' not in summary
    assert summary['memory'].startswith('process peak RSS')


def test_train_step_updates_the_weights() -> None:
    # the timed training step is the runner's: preprocessor, loss, backward, optimizer step
    tool = load_tool()
    cfg, model = build_model_from_config(FC_SIAM)
    wrapper = tool.build_optim_wrapper(cfg, model, torch.device('cpu'))
    batch = tool.make_batch(2, 3, 32, 32, num_semantic=6)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    losses = model.train_step(batch, wrapper)
    assert torch.isfinite(losses['loss'])
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) == len(before)
    result = tool.time_phase(lambda: model.train_step(batch, wrapper), iters=2, warmup=1,
                             device=torch.device('cpu'))
    assert 0 < result['min_s'] <= result['median_s']


def test_bad_options_stop_with_a_message() -> None:
    tool = load_tool()
    with pytest.raises(SystemExit, match='--batch must be >= 1'):
        tool.main([FC_SIAM, '--batch', '0'])
    with pytest.raises(SystemExit, match='missing.py'):
        tool.main(['configs/missing.py', '--device', 'cpu'])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match='CUDA is not available'):
            tool.main([FC_SIAM, '--device', 'cuda'])
