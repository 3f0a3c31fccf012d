"""The selective scan (S6) of Mamba/VMamba: a portable vectorised PyTorch scan and a CUDA fast path.

Gu and Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", 2023; used in 2-D by
Liu et al., "VMamba: Visual State Space Model", NeurIPS 2024, and by ChangeMamba (Chen et al., TGRS
2024).

For every batch element ``b``, channel ``d`` and state ``n`` the scan runs the discretised
recurrence

.. code-block:: text

    delta  = softplus(delta + delta_bias)                  (bias and softplus optional)
    h_t    = exp(delta_t * A[d, n]) * h_{t-1} + delta_t * B_t[g(d), n] * u_t      (h_{-1} = 0)
    y_t    = sum_n C_t[g(d), n] * h_t[n] + D[d] * u_t

where ``g(d) = d // (KD / G)`` is the channel's group of the grouped ``B``/``C`` (VMamba's four scan
directions are four groups). These semantics, the shapes and the fp32 state are those of the
official references: ``selective_scan_ref`` in ``kernels/selective_scan/test_selective_scan.py`` of
MzeroMiko/VMamba (copied from mamba_ssm's ``selective_scan_interface.py``; grouped B/C expanded with
``repeat(B, "B G N L -> B (G H) N L")``) and ``selective_scan_torch`` in
``classification/models/csms6s.py`` (same loop, used by VMamba when no kernel is built). Their CPU
fallback is that loop over positions; :func:`selective_scan_reference` is our own version of it, the
test oracle and the "naive" benchmark row.

:func:`selective_scan` with the portable backend instead evaluates the recurrence as a parallel
prefix scan. The step ``h -> a_t h + b_t`` (``a_t = exp(delta_t A)``, ``b_t = delta_t B_t u_t``)
composes associatively, ``(a1, b1) then (a2, b2) = (a2 a1, a2 b1 + b2)``, so inside each chunk of
``chunk_size`` positions a work-efficient parallel prefix scan (pairwise recursion, Blelloch-style)
computes all prefixes in ``log2(chunk_size)`` levels of vectorised ops, and a second such scan over
the ``L / chunk_size`` chunk ends gives the state entering every chunk (no Python loop over
positions or chunks; the chunk size only splits the work between the two scans).

Numerically it only ever multiplies the per-step decays ``a_t`` that the kernel itself computes: it
never exponentiates a cumulative sum, so with ``A * delta <= 0`` (VMamba's ``A = -exp(A_log)``)
every factor is in ``[0, 1]`` and nothing can overflow; with ``A > 0`` the products grow exactly as
the true state does (an overflow there is an overflow of the recurrence itself, as in the kernel).
Memory is ``O(batch * KD * L * N)``: a few tensors of the size of the reference's own ``deltaA``.

When no gradient is needed (inference), the portable backend evaluates the recurrence of every
(batch, channel, state) row with :func:`~mmrs.models.layers.linear_recurrence.chunked_states`
instead: chunk-local cumulative log-decays ``S_t``, ``h_t = exp(S_t) (h_in + cumsum_s(b_s /
exp(S_s)))``, both sums as small matrix products (BLAS) in place of the log-depth scan, and the
same recurrence again over the chunk ends for ``h_in``. That exponentiates a cumulative sum, but
only a chunk-local one (taken from the chunk's middle) whose size is bounded per row before it
is exponentiated (rows whose steps are too large for even a short chunk take the prefix scan),
so it cannot overflow either. Its temporaries come
from a per-thread scratch buffer (:mod:`mmrs.models.layers.scratch`), so repeated calls do not
page-fault fresh memory in. Training keeps the prefix scan, whose autograd graph is the one the
tests check against the reference gradients.
"""
import math

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor

from .linear_recurrence import chunked_states
from .linear_recurrence import prefix_scan as _prefix_scan
from .scratch import scratch_tensors
from .selective_scan_cuda import available_cuda_backends, selective_scan_cuda

__all__ = ['selective_scan', 'selective_scan_reference', 'available_cuda_backends']

_BACKENDS = ('auto', 'torch', 'cuda')
# Choices already announced in this process (one log line per distinct choice, not per call: the
# scan runs four times per VMamba block).
_LOGGED_CHOICES: set[str] = set()


def _check_shapes(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None,
                  delta_bias: Tensor | None) -> tuple[int, int, int, int, int]:
    """Validate the kernel's shape contract; return ``(batch, KD, L, G, N)``."""
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f'u and delta must both be (batch, KD, L), got {tuple(u.shape)} and '
                         f'{tuple(delta.shape)}')
    batch, kd, length = u.shape
    if A.dim() != 2 or A.shape[0] != kd:
        raise ValueError(f'A must be (KD={kd}, N), got {tuple(A.shape)}')
    n = A.shape[1]
    if B.dim() != 4 or C.shape != B.shape or B.shape[0] != batch or B.shape[2:] != (n, length):
        raise ValueError(f'B and C must both be (batch={batch}, G, N={n}, L={length}), got '
                         f'{tuple(B.shape)} and {tuple(C.shape)}')
    groups = B.shape[1]
    if kd % groups:
        raise ValueError(f'KD={kd} channels cannot be split into G={groups} groups of B/C')
    for name, t in (('D', D), ('delta_bias', delta_bias)):
        if t is not None and t.shape != (kd, ):
            raise ValueError(f'{name} must be (KD={kd},), got {tuple(t.shape)}')
    if A.is_complex():
        raise NotImplementedError('complex A (S4D-style) is not supported; VMamba uses real A')
    return batch, kd, length, groups, n


def _compute_dtype(u: Tensor) -> torch.dtype:
    """float32 for every input dtype (the kernel's state precision); float64 stays float64."""
    return torch.float64 if u.dtype == torch.float64 else torch.float32


def _discretise_delta(delta: Tensor, delta_bias: Tensor | None, delta_softplus: bool,
                      dtype: torch.dtype) -> Tensor:
    """``softplus(delta + delta_bias)`` in ``dtype`` (float32 in the kernel)."""
    delta = delta.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[:, None]
    return F.softplus(delta) if delta_softplus else delta


def selective_scan_reference(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                             D: Tensor | None = None, delta_bias: Tensor | None = None,
                             delta_softplus: bool = False) -> Tensor:
    """The selective scan as a sequential loop over positions: the oracle for the fast paths.

    Written directly from the recurrence in the module docstring, one position at a time, in float32
    (float64 inputs stay float64). It is what VMamba runs on CPU and is slow (``L`` Python
    iterations).

    Args:
        u: Input sequence, ``(batch, KD, L)``.
        delta: Step sizes before bias/softplus, ``(batch, KD, L)``.
        A: State matrix (diagonal per channel), ``(KD, N)``, real, usually negative.
        B: Input projections per group, ``(batch, G, N, L)``; channel ``d`` uses group
            ``d // (KD // G)``.
        C: Output projections per group, ``(batch, G, N, L)``.
        D: Skip weights, ``(KD,)``, or None.
        delta_bias: Bias added to ``delta``, ``(KD,)``, or None.
        delta_softplus: Whether to apply softplus to ``delta + delta_bias``.

    Returns:
        ``y`` of shape ``(batch, KD, L)`` in ``u``'s dtype.
    """
    batch, kd, length, groups, n = _check_shapes(u, delta, A, B, C, D, delta_bias)
    # Written out independently of the fast paths' helpers so that it stays an independent oracle.
    compute = torch.float64 if u.dtype == torch.float64 else torch.float32
    dt = delta.to(compute)
    if delta_bias is not None:
        dt = dt + delta_bias.to(compute).unsqueeze(-1)
    if delta_softplus:
        dt = torch.log1p(torch.exp(-dt.abs())) + dt.clamp(min=0)  # softplus, overflow-free form
    x = u.to(compute)
    a = A.to(compute)
    per_group = kd // groups
    b_full = B.to(compute).repeat_interleave(per_group, dim=1)  # (batch, KD, N, L)
    c_full = C.to(compute).repeat_interleave(per_group, dim=1)
    h = x.new_zeros(batch, kd, n)
    ys = []
    for t in range(length):
        drive = (dt[:, :, t] * x[:, :, t]).unsqueeze(-1) * b_full[..., t]
        h = torch.exp(dt[:, :, t, None] * a) * h + drive
        ys.append((h * c_full[..., t]).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + D.to(compute)[:, None] * x
    return y.to(u.dtype)


def _scan_prefix(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None,
                 chunk_size: int) -> Tensor:
    """The chunked parallel prefix scan (see the module docstring) in the compute dtype.

    ``x`` and ``dt`` (the discretised step) are ``(batch, KD, L)`` in the compute dtype; returns
    ``y`` in that dtype.
    """
    batch, kd, length = x.shape
    groups, n = B.shape[1], A.shape[1]
    compute = x.dtype
    per_group = kd // groups
    chunk = min(chunk_size, length)
    num_chunks = math.ceil(length / chunk)
    pad = num_chunks * chunk - length

    # Layout (batch, G, KD/G, chunks, T, N): channels split into their B/C group so that B and C
    # broadcast over the group's channels instead of being repeated.
    def to_blocks(t: Tensor) -> Tensor:  # (batch, KD, L) -> (batch, G, KD/G, chunks, T, 1)
        t = F.pad(t, (0, pad))  # padded steps have delta = 0: a = 1, b = 0, the identity step
        return t.view(batch, groups, per_group, num_chunks, chunk, 1)

    def bc_blocks(t: Tensor) -> Tensor:  # (batch, G, N, L) -> (batch, G, 1, chunks, T, N)
        t = F.pad(t.to(compute), (0, pad))
        return t.view(batch, groups, n, num_chunks, chunk).permute(0, 1, 3, 4, 2).unsqueeze(2)

    dt_b, x_b = to_blocks(dt), to_blocks(x)
    a_mat = A.to(compute).view(1, groups, per_group, 1, 1, n)
    decay = torch.exp(dt_b * a_mat)  # a_t, (batch, G, KD/G, chunks, T, N)
    drive = (dt_b * x_b) * bc_blocks(B)  # b_t

    # Every prefix inside each chunk, then every prefix over the chunk ends (the state entering each
    # chunk), both as log-depth vectorised scans: no Python loop over positions or chunks.
    decay, drive = _prefix_scan(decay, drive, with_decay=num_chunks > 1)
    if num_chunks > 1:
        _, ends = _prefix_scan(decay[..., -1, :], drive[..., -1, :], with_decay=False)
        start = torch.cat([torch.zeros_like(ends[..., :1, :]), ends[..., :-1, :]], dim=-2)
        state = torch.addcmul(drive, decay, start.unsqueeze(-2))
    else:
        state = drive
    y = (state * bc_blocks(C)).sum(-1)  # (batch, G, KD/G, chunks, T)
    y = y.reshape(batch, kd, num_chunks * chunk)[..., :length]
    if D is not None:
        y = y + D.to(compute)[:, None] * x
    return y


def _discretise_delta_forward(delta: Tensor, delta_bias: Tensor | None, delta_softplus: bool,
                              out: Tensor, exact_softplus: bool = True) -> Tensor:
    """:func:`_discretise_delta` without autograd, written into ``out`` (``delta``'s shape).

    ``out`` is contiguous: left to choose the layout of a ``(batch, KD, L) + (KD, 1)`` result,
    PyTorch's CPU kernels may walk it channel-innermost, several times slower.
    ``exact_softplus=False`` computes the softplus as ``log1p(exp(x))`` in two in-place passes,
    ~1.7x faster than PyTorch's kernel on one CPU thread and the kernel's own formula up to its
    threshold of 20 (above it the two agree to rounding), but infinite where ``exp`` overflows
    (``x`` past ~88.7): the caller must check.
    """
    if delta_bias is not None:
        torch.add(delta, delta_bias.to(out.dtype)[:, None], out=out)
    else:
        out.copy_(delta)
    if delta_softplus and exact_softplus:  # F.softplus: beta 1, threshold 20
        torch.ops.aten.softplus.out(out, 1, 20, out=out)
    elif delta_softplus:
        out.exp_().log1p_()
    return out


def _scan_cumsum(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None,
                 delta_bias: Tensor | None, delta_softplus: bool, chunk_size: int) -> Tensor:
    """Forward only (no autograd graph): the recurrence as chunk-local cumulative sums.

    Builds the log-decays ``delta_t A`` and drives ``delta_t B_t u_t`` of every (batch, channel,
    state) row once, in buffers padded to whole chunks (padding is the identity step), and hands
    them to :func:`~mmrs.models.layers.linear_recurrence.chunked_states`, which picks each
    row's chunk from its decays (see there: nothing overflows whatever the decay); then ``y`` is
    the states read through ``C`` plus the ``D`` skip. The temporaries come from the per-thread
    scratch buffer (:mod:`~mmrs.models.layers.scratch`: no page faults after the first call),
    are written through ``out=`` (left to choose the layout of a broadcast product, PyTorch's
    CPU kernels may walk it channel-innermost, several times slower) and updated in place; only
    ``y`` is a new tensor.
    """
    batch, kd, length = u.shape
    groups, n = B.shape[1], A.shape[1]
    per_group = kd // groups
    compute = _compute_dtype(u)
    x = u.to(compute)
    chunk = 2**int(math.log2(max(1, min(chunk_size, length))))
    padded = math.ceil(length / chunk) * chunk
    # Few buffers, reused as soon as their contents are spent (each full-size pass costs about
    # as much again when its memory is not in cache), and y (the only new tensor) holds
    # chunked_states' temporary until the states are read into it. For N = 1 the log-decays
    # delta A are never multiplied out: chunked_states reads the steps and A (its ``rate``).
    y = x.new_empty(batch, kd, length)
    in_y = n == 1 and padded == length
    log_decay, drive, *rest = scratch_tensors(
        [(batch, kd, n, padded)] * (2 if in_y else 3) + ([(batch, kd, length)] if n > 1 else []),
        compute, u.device)
    workspace = y.view(-1, padded) if in_y else rest.pop(0).view(-1, padded)
    dt = log_decay[:, :, 0, :length] if n == 1 else rest.pop(0)
    # (batch, G, KD/G, N, L): channels split into their B/C group, which broadcast over them
    grouped = (batch, groups, per_group, n, padded)
    bc_shape = (batch, groups, 1, n, length)
    # softplus(.) >= 0 and A <= 0: every log-decay is <= 0, which chunked_states need not check
    decaying = delta_softplus and bool((A <= 0).all())
    rate = A.to(compute).view(1, kd).expand(batch, kd).reshape(-1) if n == 1 else None
    # The fast softplus first; should it overflow (chunked_states finds a log-decay that is not
    # finite and returns None), everything again with the kernel's softplus, which also passes
    # NaN / inf inputs on.
    for exact_softplus in (False, True) if delta_softplus else (True, ):
        _discretise_delta_forward(delta, delta_bias, delta_softplus, dt, exact_softplus)
        if n == 1:  # no (batch, KD, L) temporary for VMamba's d_state = 1
            torch.mul(dt, x, out=drive[:, :, 0, :length])
            drive.view(grouped)[..., :length].mul_(B.to(compute).view(bc_shape))
        else:
            torch.mul(dt.unsqueeze(2), A.to(compute).view(1, kd, n, 1),
                      out=log_decay[..., :length])
            torch.mul(torch.mul(dt, x).view(batch, groups, per_group, 1, length),
                      B.to(compute).view(bc_shape), out=drive.view(grouped)[..., :length])
        if padded > length:  # identity steps
            log_decay[..., length:] = 0.0
            drive[..., length:] = 0.0
        states = chunked_states(log_decay.view(-1, padded), drive.view(-1, padded), chunk,
                                nonpositive=decaying, workspace=workspace, rate=rate,
                                finite_only=not exact_softplus)
        if states is not None:
            break
    states = states.view(grouped)[..., :length]
    if n == 1:
        torch.mul(states.squeeze(3), C.to(compute).view(batch, groups, 1, length),
                  out=y.view(batch, groups, per_group, length))
    else:
        torch.sum(states * C.to(compute).view(bc_shape), 3, out=y.view(batch, groups,
                                                                       per_group, length))
    if D is not None:
        y.addcmul_(D.to(compute)[:, None], x)
    return y.to(u.dtype)


def _selective_scan_torch(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                          D: Tensor | None, delta_bias: Tensor | None, delta_softplus: bool,
                          chunk_size: int) -> Tensor:
    """The portable scan: the cumsum form without autograd, else the prefix scan."""
    _check_shapes(u, delta, A, B, C, D, delta_bias)
    if chunk_size < 1:
        raise ValueError(f'chunk_size must be >= 1, got {chunk_size}')
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (u, delta, A, B, C, D, delta_bias))
    # The jit tracer (get_flops) cannot record the forward path's out= / scratch writes.
    if needs_grad or torch.jit.is_tracing():
        compute = _compute_dtype(u)
        dt = _discretise_delta(delta, delta_bias, delta_softplus, compute)
        return _scan_prefix(u.to(compute), dt, A, B, C, D, chunk_size).to(u.dtype)
    with torch.no_grad():
        return _scan_cumsum(u, delta, A, B, C, D, delta_bias, delta_softplus, chunk_size)


def _log_choice(choice: str) -> None:
    if choice not in _LOGGED_CHOICES:
        _LOGGED_CHOICES.add(choice)
        print_log(f'selective_scan: using the {choice} implementation', logger='current')


def selective_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                   D: Tensor | None = None, delta_bias: Tensor | None = None,
                   delta_softplus: bool = False, *, backend: str = 'auto',
                   chunk_size: int = 64) -> Tensor:
    """The selective scan with the semantics of mamba_ssm's ``selective_scan_fn`` (no ``z`` gate).

    Args:
        u: Input sequence, ``(batch, KD, L)``.
        delta: Step sizes before bias/softplus, ``(batch, KD, L)``.
        A: State matrix (diagonal per channel), ``(KD, N)``, real; VMamba uses ``-exp(A_log) < 0``.
        B: Input projections per group, ``(batch, G, N, L)`` with ``KD % G == 0``; channel group
            ``g`` is channels ``[g*KD/G, (g+1)*KD/G)``.
        C: Output projections per group, ``(batch, G, N, L)``.
        D: Skip weights, ``(KD,)``, or None.
        delta_bias: Bias added to ``delta`` before the softplus, ``(KD,)``, or None.
        delta_softplus: Whether to apply softplus to ``delta + delta_bias``.
        backend: ``'auto'`` uses a CUDA kernel when the tensors are on a GPU and one is importable
            (see :func:`available_cuda_backends`), else the portable scan; ``'cuda'`` forces the
            kernel; ``'torch'`` forces the portable scan. The choice is logged once per process.
        chunk_size: Positions per chunk of the portable scan: a prefix scan of depth
            ``log2(chunk_size)`` inside the chunks, one of depth ``log2(L / chunk_size)`` over the
            chunk ends. Without autograd (no input requires grad, or under ``no_grad``) the
            chunks are cumulative sums instead, of the power of two ``<= chunk_size`` of least
            estimated work given the decays (see
            :func:`~mmrs.models.layers.linear_recurrence.chunked_states`). Any value >= 1
            gives the same result up to rounding.

    Returns:
        ``y`` of shape ``(batch, KD, L)`` in ``u``'s dtype; the state and every accumulation are
        float32 (float64 for float64 inputs on the portable path). VMamba's ``oflex`` kernel returns
        float32 for half inputs; here the result is cast back to ``u``'s dtype.

    Raises:
        ValueError: On an unknown backend or inconsistent shapes.
        RuntimeError: If ``backend='cuda'`` and the tensors are not on a GPU or no kernel is
            importable.
    """
    if backend not in _BACKENDS:
        raise ValueError(f'backend must be one of {_BACKENDS}, got {backend!r}')
    if backend != 'torch':
        kernels = available_cuda_backends() if u.is_cuda else []
        if kernels:
            _log_choice(f'CUDA kernel ({kernels[0]})')
            _check_shapes(u, delta, A, B, C, D, delta_bias)
            return selective_scan_cuda(u, delta, A, B, C, D, delta_bias, delta_softplus,
                                       kernels[0])
        if backend == 'cuda':
            where = 'the tensors are on the CPU' if not u.is_cuda else (
                'neither mamba_ssm nor VMamba\'s selective_scan_cuda_oflex/_core/'
                'selective_scan_cuda extension is importable')
            raise RuntimeError(f"selective_scan(backend='cuda') needs a CUDA kernel, but {where}; "
                               "use backend='torch' (or 'auto') for the portable PyTorch scan")
    _log_choice('portable PyTorch')
    return _selective_scan_torch(u, delta, A, B, C, D, delta_bias, delta_softplus, chunk_size)
