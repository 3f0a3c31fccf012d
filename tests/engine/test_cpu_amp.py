"""CPU mixed precision (``tools/train.py --amp`` without a GPU)."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from torch import nn

import mmrs.engine  # noqa: F401  (registers the wrapper)
from mmrs.engine.optim_wrappers import CPUAmpOptimWrapper


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
