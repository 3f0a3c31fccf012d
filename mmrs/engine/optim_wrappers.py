"""Mixed precision on the CPU, so ``tools/train.py --amp`` works without a GPU.

mmengine's ``AmpOptimWrapper`` is CUDA/NPU/MLU only (float16 autocast + a gradient scaler).
On the CPU the useful low-precision type is bfloat16: it has float32's exponent range, so no
loss scaling is needed, and torch autocasts matmuls/convolutions to it while keeping
reductions and losses in float32.
"""
from contextlib import contextmanager
from typing import Iterator

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from mmrs.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward pass runs under CPU autocast (bfloat16 by default).

    Args:
        dtype: autocast type, ``'bfloat16'`` (default) or ``'float16'``.
        **kwargs: everything :class:`mmengine.optim.OptimWrapper` takes.
    """

    def __init__(self, dtype: str | torch.dtype = 'bfloat16', **kwargs) -> None:
        super().__init__(**kwargs)
        dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if dtype not in (torch.bfloat16, torch.float16):
            raise ValueError(f'CPUAmpOptimWrapper autocasts to bfloat16 or float16, got {dtype}')
        self.cast_dtype = dtype

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        with super().optim_context(model), \
                torch.autocast(device_type='cpu', dtype=self.cast_dtype):
            yield
