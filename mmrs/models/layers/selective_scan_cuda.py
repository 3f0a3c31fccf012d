"""The selective scan's optional CUDA kernels: VMamba's ``selective_scan_cuda_oflex`` /
``_core`` extensions, ``mamba_ssm``'s ``selective_scan_fn`` or its bare ``selective_scan_cuda``
extension, with their autograd wrapper.

Looked up lazily: importing them at ``import mmrs`` would cost CUDA initialisation on CPU-only
machines. :func:`mmrs.models.layers.selective_scan.selective_scan` dispatches here.
"""
import torch
from torch import Tensor

__all__ = ['available_cuda_backends', 'selective_scan_cuda']

_CUDA_CACHE: dict[str, object] = {}


def available_cuda_backends() -> list[str]:
    """Names of the importable selective-scan CUDA implementations, in order of preference.

    ``'oflex'``/``'core'`` are VMamba's extensions (``selective_scan_cuda_oflex``,
    ``selective_scan_cuda_core``, built from ``kernels/selective_scan``), ``'mamba_ssm'`` is
    ``mamba_ssm.ops.selective_scan_interface.selective_scan_fn`` and ``'mamba'`` the bare
    ``selective_scan_cuda`` extension that ``mamba_ssm`` builds (VMamba calls it directly).
    """
    if 'names' not in _CUDA_CACHE:
        names = []
        for name, module in (('oflex', 'selective_scan_cuda_oflex'),
                             ('core', 'selective_scan_cuda_core')):
            try:
                _CUDA_CACHE[name] = __import__(module)
                names.append(name)
            except Exception:  # noqa: BLE001 - a broken build must not break the portable path
                pass
        try:
            from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
            _CUDA_CACHE['mamba_ssm'] = selective_scan_fn
            names.append('mamba_ssm')
        except Exception:  # noqa: BLE001
            try:
                _CUDA_CACHE['mamba'] = __import__('selective_scan_cuda')
                names.append('mamba')
            except Exception:  # noqa: BLE001
                pass
        _CUDA_CACHE['names'] = names
    return list(_CUDA_CACHE['names'])  # type: ignore[arg-type]


class _VMambaKernelScan(torch.autograd.Function):
    """Autograd wrapper of VMamba's / mamba's raw CUDA extensions (their fwd/bwd signatures)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias, delta_softplus,  # type: ignore[override]
                name):
        ext = _CUDA_CACHE[name]
        if name == 'oflex':  # last arg: output in float32 ("oflex"); we cast back below
            out, x, *_ = ext.fwd(u, delta, A, B, C, D, delta_bias, delta_softplus, 1, True)
        elif name == 'core':
            out, x, *_ = ext.fwd(u, delta, A, B, C, D, delta_bias, delta_softplus, 1)
        else:
            out, x, *_ = ext.fwd(u, delta, A, B, C, D, None, delta_bias, delta_softplus)
        ctx.save_for_backward(u, delta, A, B, C, D, delta_bias, x)
        ctx.delta_softplus, ctx.name = delta_softplus, name
        return out

    @staticmethod
    def backward(ctx, dout):  # type: ignore[override]
        u, delta, A, B, C, D, delta_bias, x = ctx.saved_tensors
        ext = _CUDA_CACHE[ctx.name]
        dout = dout.contiguous()
        if ctx.name in ('oflex', 'core'):
            grads = ext.bwd(u, delta, A, B, C, D, delta_bias, dout, x, ctx.delta_softplus, 1)
        else:
            grads = ext.bwd(u, delta, A, B, C, D, None, delta_bias, dout, x, None, None,
                            ctx.delta_softplus, False)
        du, ddelta, dA, dB, dC, dD, ddelta_bias = grads[:7]
        return (du, ddelta, dA, dB, dC, dD if D is not None else None,
                ddelta_bias if delta_bias is not None else None, None, None)


def selective_scan_cuda(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                         D: Tensor | None, delta_bias: Tensor | None, delta_softplus: bool,
                         name: str) -> Tensor:
    """Run kernel ``name`` with the dtypes and strides the kernels require (fp32 A/D/bias);
    the shapes are checked by the caller."""
    u = u.contiguous()
    delta, B, C = (t.to(u.dtype).contiguous() for t in (delta, B, C))
    A = A.float().contiguous()
    D = D.float().contiguous() if D is not None else None
    delta_bias = delta_bias.float().contiguous() if delta_bias is not None else None
    if name == 'mamba_ssm':
        out = _CUDA_CACHE[name](u, delta, A, B, C, D, None, delta_bias, delta_softplus)
    else:
        out = _VMambaKernelScan.apply(u, delta, A, B, C, D, delta_bias, delta_softplus, name)
    return out.to(u.dtype)
