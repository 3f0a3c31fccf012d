"""Per-thread scratch memory reused across calls of the forward-only selective scan on the CPU.

Each inference call of the portable scan needs a few temporaries the size of its input (steps,
log-decays, drives). Fresh ones cost page faults on first touch, and the CPU allocator (glibc)
hands large blocks back to the kernel when they are freed, so every call faults them in again:
on a virtual machine that measured about 5 us per 4 KiB page, more than the arithmetic itself
(MambaBCD-T's stage-1 scan at 256 x 256: ~9,000 faults, ~45 ms of ~90). A VMamba model calls
the scan with the same few shapes over and over, so one buffer per thread, grown to the largest
request and carved into views, removes that cost after the first call.

Only CPU tensors use it (CUDA has its caching allocator) and only requests up to
:data:`MAX_SCRATCH_BYTES` (larger ones get plain allocations), so a process keeps at most that
much per thread; :func:`release_scratch` frees it. The views are valid until the next request on
the same thread: callers use them inside one call and never return them.
"""
import math
import os
import threading

import torch
from torch import Tensor

__all__ = ['MAX_SCRATCH_BYTES', 'release_scratch', 'scratch_tensors']

#: Largest request served from the reusable buffer, in bytes (``MMRS_SCAN_SCRATCH_MB`` overrides
#: the default of 256 MiB; 0 turns the reuse off).
MAX_SCRATCH_BYTES = int(float(os.environ.get('MMRS_SCAN_SCRATCH_MB', 256)) * 2**20)
#: Each view starts at a multiple of this many bytes (cache-line and SIMD alignment).
_ALIGN_BYTES = 64

_LOCAL = threading.local()


def scratch_tensors(shapes: list[tuple[int, ...]], dtype: torch.dtype,
                    device: torch.device) -> list[Tensor]:
    """Uninitialised contiguous tensors of ``shapes``, from this thread's reusable buffer.

    Falls back to ``torch.empty`` for non-CPU devices and for requests above
    :data:`MAX_SCRATCH_BYTES`. The contents are arbitrary (left over from earlier calls).
    """
    device = torch.device(device)
    itemsize = torch.empty((), dtype=dtype).element_size()
    align = max(1, _ALIGN_BYTES // itemsize)
    numels = [math.prod(shape) for shape in shapes]
    offsets, total = [], 0
    for numel in numels:
        offsets.append(total)
        total += math.ceil(numel / align) * align
    if device.type != 'cpu' or total * itemsize > MAX_SCRATCH_BYTES:
        return [torch.empty(shape, dtype=dtype, device=device) for shape in shapes]
    buffers: dict[torch.dtype, Tensor] = getattr(_LOCAL, 'buffers', None) or {}
    _LOCAL.buffers = buffers
    buffer = buffers.get(dtype)
    if buffer is None or buffer.numel() < total:
        buffers.pop(dtype, None)  # free the old one before taking the larger one
        buffer = buffers[dtype] = torch.empty(total, dtype=dtype)
    return [buffer[start:start + numel].view(shape)
            for start, numel, shape in zip(offsets, numels, shapes)]


def release_scratch() -> None:
    """Free this thread's scratch buffers (they are taken again on the next request)."""
    _LOCAL.buffers = {}
