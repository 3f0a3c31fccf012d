"""CPU mixed precision (``tools/train.py --amp`` without a GPU)."""
import json

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from torch import nn

import mmrs.engine  # noqa: F401  (registers the wrapper)
from mmrs.engine.optim_wrappers import CPUAmpOptimWrapper
from mmrs.utils.checkpoint import safe_torch_load


def build(dtype: str = 'bfloat16') -> tuple[nn.Module, CPUAmpOptimWrapper]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))
    wrapper = build_optim_wrapper(model, dict(type='mmrs.CPUAmpOptimWrapper', dtype=dtype,
                                              optimizer=dict(type='SGD', lr=0.1)))
    return model, wrapper


def test_forward_runs_in_bfloat16_and_weights_stay_float32() -> None:
    model, wrapper = build()
    assert isinstance(wrapper, CPUAmpOptimWrapper)
    before = [p.detach().clone() for p in model.parameters()]
    with wrapper.optim_context(model):
        out = model(torch.randn(2, 3, 8, 8))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().pow(2).mean())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    # outside the context everything is float32 again
    assert model(torch.randn(1, 3, 8, 8)).dtype == torch.float32


def test_rejects_types_without_cpu_autocast() -> None:
    with pytest.raises(ValueError, match='bfloat16 or float16'):
        build('float64')


PROBE = '''
"""Records, during training, whether CPU autocast is on and the dtype convolutions produce."""
import json

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class AutocastProbeHook(Hook):

    def __init__(self, out_file):
        self.out_file = out_file
        self.records = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = getattr(runner.model, 'module', runner.model)
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))

        def record(module, inputs, output):
            device = module.weight.device.type
            self.records.append(dict(autocast=torch.is_autocast_enabled(device),
                                     activation=str(output.dtype),
                                     weight=str(module.weight.dtype)))

        self.handle = conv.register_forward_hook(record)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.handle.remove()
        self.records[-1]['loss'] = str(outputs['loss'].dtype)
        with open(self.out_file, 'w') as f:
            json.dump(self.records, f)
'''


@pytest.mark.slow
def test_amp_training_really_autocasts(tmp_path) -> None:
    """``tools/train.py --amp``: every training forward runs under autocast (without CUDA:
    CPU autocast, activations bfloat16; with CUDA: float16), weights and loss stay float32,
    nothing is autocast without ``--amp``, and an AMP checkpoint resumes."""
    from tests.tools._runner import REPO_ROOT, TINY_CONFIG, run_tool
    tiny_config = tmp_path / 'tiny.py'
    tiny_config.write_text(TINY_CONFIG.format(root=REPO_ROOT, data_root=tmp_path / 'data'))
    (tmp_path / 'amp_probe.py').write_text(PROBE)
    probed = tmp_path / 'probed.py'
    probed.write_text(f"_base_ = ['{tiny_config}']\n"
                      "custom_imports = dict(imports=['amp_probe'], allow_failed_imports=False)\n"
                      f"custom_hooks = [dict(type='AutocastProbeHook', out_file='{{out}}')]\n")
    env = dict(PYTHONPATH=str(tmp_path))

    def train(name: str, *options: str) -> list[dict]:
        out = tmp_path / f'{name}.json'
        config = tmp_path / f'{name}.py'
        config.write_text(probed.read_text().replace('{out}', str(out)))
        run_tool('tools/train.py', str(config), '--work-dir', str(tmp_path / name), *options,
                 '--cfg-options', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2', env=env)
        return json.loads(out.read_text())

    amp = train('amp', '--amp')
    low = 'torch.float16' if torch.cuda.is_available() else 'torch.bfloat16'
    assert len(amp) == 2  # one record per training iteration
    for record in amp:
        assert record == dict(autocast=True, activation=low, weight='torch.float32',
                              loss='torch.float32'), record
    plain = train('plain')
    assert all(r['autocast'] is False and r['activation'] == 'torch.float32' for r in plain)

    state = safe_torch_load(str(tmp_path / 'amp' / 'iter_2.pth'), map_location='cpu')
    assert state['meta']['iter'] == 2
    run_tool('tools/train.py', str(tiny_config), '--work-dir', str(tmp_path / 'amp'), '--amp',
             '--resume', '--cfg-options', 'train_cfg.max_iters=3', 'train_cfg.val_interval=3')
    assert (tmp_path / 'amp' / 'iter_3.pth').is_file()
