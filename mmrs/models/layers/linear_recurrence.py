"""First-order linear recurrences ``h_t = a_t h_{t-1} + b_t`` along a tensor dimension, vectorised.

The selective scan (:mod:`mmrs.models.layers.selective_scan`) is such a recurrence per channel and
state. Two evaluations live here:

- :func:`prefix_scan`, a work-efficient parallel prefix scan of the steps ``h -> a h + b``
  (autograd-friendly: only products and sums of the decays themselves);
- :func:`chunked_states`, the forward-only form used for inference: inside chunks of ``T``
  positions, with chunk-local cumulative log-decays ``S_t``, ``h_t = exp(S_t) * (h_in +
  sum_{s<=t} b_s / exp(S_s))`` (the exponents taken relative to the chunk's middle, which halves
  their range), two small matrix products per chunk instead of ``log2(T)`` levels, and the same
  recurrence over the chunk ends for ``h_in``.
"""
import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['LOG_DECAY_LIMIT', 'MIN_FAST_CHUNK', 'chunked_states', 'prefix_scan']

#: Largest ``|S|`` (cumulative log-decay inside one chunk) :func:`chunked_states` exponentiates,
#: per dtype: ``exp(+-S)`` times the drive stays far from overflow and from subnormals (float32
#: ends near ``e**88``, its normal numbers near ``e**-87``).
LOG_DECAY_LIMIT = {torch.float32: 60.0, torch.float64: 600.0}
#: Positions per block of the log-decay sums that bound the chunks' exponents: half the shortest
#: chunk.
BLOCK = 8
#: Shortest chunk of :func:`chunked_states`; rows whose decays are too strong even for it are
#: solved step by step.
MIN_FAST_CHUNK = 2 * BLOCK


def prefix_scan(decay: Tensor, drive: Tensor,
                 with_decay: bool = True) -> tuple[Tensor | None, Tensor]:
    """Inclusive scan of the steps ``h -> decay_t * h + drive_t`` along dim -2.

    Returns ``(prod_{s<=t} decay_s, h_t)`` for every ``t``, ``h`` starting from zero (the products
    only if ``with_decay``; skipping them saves a third of the work). A work-efficient
    (Blelloch-style) recursion: neighbouring steps are composed in pairs, the half-length sequence
    of pairs is scanned recursively, which gives the prefixes ending at odd positions, and each
    even position is its own step applied to the prefix before it. ``log2(T)`` levels of vectorised
    elementwise ops on geometrically shrinking tensors, a few full-size passes in all.
    """
    length = decay.shape[-2]
    if length == 1:
        return (decay if with_decay else None), drive
    if length % 2:  # pad with the identity step (decay 1, drive 0)
        decay = torch.cat([decay, torch.ones_like(decay[..., :1, :])], dim=-2)
        drive = torch.cat([drive, torch.zeros_like(drive[..., :1, :])], dim=-2)
    a_even, a_odd = decay.unflatten(-2, (-1, 2)).unbind(-2)
    b_even, b_odd = drive.unflatten(-2, (-1, 2)).unbind(-2)
    # Positions 2i+1: the pair (2i, 2i+1) composed, then scanned.
    prod_odd, h_odd = prefix_scan(a_odd * a_even, torch.addcmul(b_odd, a_odd, b_even), with_decay)
    # Positions 2i: step 2i applied to the prefix ending at 2i-1 (the identity before position 0).
    h_before = torch.cat([torch.zeros_like(h_odd[..., :1, :]), h_odd[..., :-1, :]], dim=-2)
    h_even = torch.addcmul(b_even, a_even, h_before)
    states = torch.stack([h_even, h_odd], dim=-2).flatten(-3, -2)[..., :length, :]
    if not with_decay:
        return None, states
    prod_before = torch.cat([torch.ones_like(prod_odd[..., :1, :]), prod_odd[..., :-1, :]], dim=-2)
    prods = torch.stack([a_even * prod_before, prod_odd], dim=-2).flatten(-3, -2)[..., :length, :]
    return prods, states


#: Sequences this short are solved step by step (a handful of levels).
_SHORT = 64
#: The chunk-length choice of :func:`chunked_states` prices its work in positions solved step by
#: step (:func:`_scan_states`: ~5 ns per float32 position on one CPU thread for 768 x 4096 or
#: larger, ~3.3 ns for arrays up to ~1.5 M positions). Its own passes cost ~2.5 ns per position
#: with 16- or 32-position chunks (3 ns with 64), the chunk ends' recursion included: measured,
#: 768 rows x 4096, 1 thread. The price is that of the large arrays the choice matters for.
_CHUNKED_COST = 0.5
#: Chunking a sequence must save at least this fraction of the step-by-step work, or the whole
#: sequence is solved step by step: on small arrays step by step is relatively cheaper and
#: chunking pays per-op overheads the price above leaves out (weak decays, measured: 768 x 256
#: chunked 4.0 ns, step by step 3.5 ns per position; 1536 x 1024 2.7 vs 3.1 ns; 768 x 4096 2.5
#: vs 5.2 ns).
_CHUNKING_MIN_SAVING = 0.3


def _stepwise_states(log_decay: Tensor, drive: Tensor) -> Tensor:
    """States of the steps ``(exp(log_decay_t), drive_t)`` along the last dim of ``(rows, L)``,
    by :func:`_scan_states` (forward only)."""
    return _scan_states(log_decay.exp(), drive)


def _scan_states(decay: Tensor, drive: Tensor) -> Tensor:
    """:func:`prefix_scan`'s states (``with_decay=False``) for ``(rows, L)`` along the last dim,
    without autograd: the same pairwise recursion and the same products, each level written
    into its result through strided views instead of concatenated and interleaved (~35% faster;
    the same values to the bit)."""
    length = drive.shape[-1]
    if length == 1:
        return drive
    if length % 2:  # pad with the identity step (decay 1, drive 0)
        decay, drive = F.pad(decay, (0, 1), value=1.0), F.pad(drive, (0, 1))
    a_even, a_odd = decay[:, 0::2], decay[:, 1::2]
    b_even, b_odd = drive[:, 0::2], drive[:, 1::2]
    h_odd = _scan_states(a_odd * a_even, torch.addcmul(b_odd, a_odd, b_even))
    states = torch.empty_like(drive)
    states[:, 1::2] = h_odd
    states[:, 0] = b_even[:, 0]
    torch.addcmul(b_even[:, 1:], a_even[:, 1:], h_odd[:, :-1], out=states[:, 2::2])
    return states[:, :length]


def _exact_float32_matmul(device_type: str = 'cpu') -> bool:
    """Whether float32 matrix products on ``device_type`` are left in float32: not allowed, by
    ``torch.set_float32_matmul_precision('high' | 'medium')``, ``allow_tf32`` or the
    ``fp32_precision`` settings (read from the most specific one set), to round their inputs to
    TF32 or bfloat16."""
    backends = torch.backends
    settings = ((backends.cuda.matmul, backends) if device_type == 'cuda' else
                (backends.mkldnn.matmul, backends.mkldnn, backends))
    for setting in settings:
        precision = getattr(setting, 'fp32_precision', 'none')
        if precision != 'none':
            return precision == 'ieee'
    return True


@functools.lru_cache(maxsize=64)
def _chunk_sum_matrices(size: int, dtype: torch.dtype,
                        device: torch.device) -> tuple[Tensor, Tensor]:
    """``(T, T)`` matrices whose right products sum every ``T``-position chunk (rows of the left
    factor) cumulatively: ``from_start[s, t] = [s <= t]`` gives ``S_t``, ``from_middle[s, t] =
    [s <= t] - [s < T / 2]`` gives ``S_t - S_{T/2-1}`` (``+`` the positions ``T/2..t`` after the
    middle, ``-`` the positions ``t+1..T/2-1`` before it: never a difference of two long sums)."""
    index = torch.arange(size, device=device)
    from_start = (index[:, None] <= index[None, :]).to(dtype)
    from_middle = from_start - (index < size // 2).to(dtype)[:, None]
    return from_start, from_middle


def _exact_matmul(x: Tensor, matrix: Tensor, out: Tensor | None = None) -> Tensor:
    """``x @ matrix`` (BLAS) with float32 sums left in float32; in float64 where float32
    products may be rounded to TF32 / bfloat16 (see :func:`_exact_float32_matmul`)."""
    if x.dtype == torch.float32 and not _exact_float32_matmul(x.device.type):
        product = (x.double() @ matrix.double()).to(x.dtype)
        return product if out is None else out.copy_(product)
    return torch.matmul(x, matrix, out=out)


def _block_log_decay_sums(log_decay: Tensor, largest: int, nonpositive: bool = False,
                          rate: Tensor | None = None) -> dict[int, tuple[Tensor, Tensor]]:
    """``{s: (bound, sums)}`` for ``s = BLOCK, 2 BLOCK, ..., largest``: ``sums`` ``(rows,
    ceil(L / largest) * largest / s)`` holds the log-decays summed over every block of ``s``
    positions (``L`` padded with zeros to whole ``largest`` blocks), ``bound`` ``(rows,)`` bounds
    ``|S|``, the cumulative log-decay from a block's start, over every block of ``s`` positions.

    The bound is exact for rows whose log-decays are all ``<= 0`` (decays in ``(0, 1]``, as the
    selective scan's ``exp(delta A)`` with ``delta >= 0`` and ``A < 0``): ``S`` falls
    monotonically, so its largest magnitude is the block's whole sum, the most negative of
    ``sums``. Other rows get ``s * max |log-decay|``. ``nonpositive`` says that every log-decay is
    known to be ``<= 0`` (the caller's guarantee), which saves looking for the other rows. With
    ``rate`` (``(rows,)``, only together with ``nonpositive``) the log-decays are ``log_decay *
    rate[:, None]``, and only the block sums are multiplied out. A log-decay that is infinite
    or NaN makes its row's bound infinite or NaN (its block sum is, and ``amin`` / ``amax``
    pass NaN on).
    """
    rows, length = log_decay.shape
    padded = log_decay if length % largest == 0 else F.pad(log_decay, (0, -length % largest))
    # (rows, L / BLOCK) by a matrix-vector product: several times faster than sum(-1) over
    # 8-wide rows
    sums = _exact_matmul(padded.reshape(-1, BLOCK), padded.new_ones(BLOCK)).view(rows, -1)
    if rate is not None:
        if not nonpositive:
            raise ValueError('a rate is read without multiplying it out only for known decays')
        sums.mul_(rate[:, None])
    mixed, step = None, None
    if not nonpositive:
        mixed = (log_decay.amax(dim=-1) > 0).nonzero().flatten()
        step = log_decay[mixed].abs().amax(dim=-1) if len(mixed) else None
    out, size = {}, BLOCK
    while size <= largest:
        bound = sums.amin(dim=-1).neg_()  # the most negative block sum
        if step is not None:
            bound[mixed] = step * size
        out[size] = bound, sums
        if size < largest:  # L / BLOCK is a multiple of largest / BLOCK: pairs always fit
            sums = sums[:, 0::2] + sums[:, 1::2]
        size *= 2
    return out


def chunked_states(log_decay: Tensor, drive: Tensor, chunk: int, nonpositive: bool = False,
                   workspace: Tensor | None = None, rate: Tensor | None = None,
                   finite_only: bool = False) -> Tensor | None:
    """States of ``h_t = exp(log_decay_t) * h_{t-1} + drive_t`` along the last dim, ``h_{-1} = 0``.

    Forward only (no autograd graph is built). Chunks of ``T`` positions (a power of two,
    ``<= chunk``) are solved with two matrix products: with ``S_t`` the cumulative log-decay
    from the chunk's start and ``M`` its value at the chunk's middle (the sum over the first
    half), ``h_t = exp(S_t - M) (h_in exp(M) + sum_{s<=t} b_s / exp(S_s - M))``, the exponents
    ``S_t - M`` by one product and the sums over ``s`` by another (see
    :func:`_chunk_sum_matrices`). The states ``h_in`` entering the chunks solve the same
    recurrence over the chunk ends (log-decay ``S`` at the end, drive the chunk's own end state),
    a sequence ``T`` times shorter, by this function again, or step by step
    (:func:`_scan_states`) where chunking would not save enough.

    Exponentiating ``S - M`` is safe only while it stays within :data:`LOG_DECAY_LIMIT`. Taken
    from the middle, ``|S - M|`` is at most the larger ``|S|`` excursion of the two half chunks,
    half of what it would be from the chunk's start, so twice as long chunks fit the same limit.
    It is checked per row and chunk length before anything is exponentiated (exactly where the
    decays are at most 1, see :func:`_block_log_decay_sums`). ``T`` (from
    :data:`MIN_FAST_CHUNK` to ``chunk``) is the one of least estimated work: the chunked passes,
    the rows whose bound exceeds the limit, and the chunk ends. Those rows are copied before
    anything is overwritten and solved step by step (:func:`_scan_states`), their log-decays
    zeroed in the main pass so that they stay finite there. So nothing overflows whatever the
    decay, and rows never mix. The rounding is that of a sum of the same terms, each weight
    rounded once, as in the recurrence. One difference from a step-by-step loop: a NaN or
    infinite input reaches the whole chunk it lies in (the products multiply it by the
    triangles' zeros), not only the positions after it.

    Args:
        log_decay: ``(rows, L)``, the log of every step's decay (``delta_t * A`` for the selective
            scan). Overwritten with the result.
        drive: ``(rows, L)``, the inputs ``b_t``. Overwritten.
        chunk: Longest chunk, in positions.
        nonpositive: The caller guarantees every log-decay is ``<= 0`` (decays at most 1); saves
            one pass looking for rows that grow. With a wrong guarantee, results may overflow.
        workspace: Memory for one more ``(rows, L)`` temporary (contiguous, ``drive``'s dtype),
            e.g. a reused buffer; allocated when not given or when ``L`` had to be padded.
        rate: ``(rows,)``: the log-decays are ``log_decay * rate[:, None]`` (the selective scan's
            steps ``delta`` and ``A`` for ``N = 1``). With ``nonpositive`` they are never
            multiplied out: the first product takes ``rate`` into its matrix, one full-size pass
            fewer; otherwise they are, in place.
        finite_only: Return None (the inputs possibly overwritten) if a log-decay is infinite
            or NaN: read from the bounds, which are computed anyway, so a caller whose inputs
            may have overflowed learns it at no cost and can recompute them.

    Returns:
        ``h`` of shape ``(rows, L)``, in ``log_decay``'s memory unless ``L`` had to be padded to
        whole chunks (give ``L`` a multiple of ``chunk`` to avoid that copy) or the sequence was
        solved step by step; None for ``finite_only`` and a log-decay that is not finite.
    """
    rows, length = drive.shape
    short = length <= _SHORT or chunk < MIN_FAST_CHUNK  # the log-depth scan is cheap
    if rate is not None and (short or not nonpositive):
        log_decay, rate = log_decay.mul_(rate[:, None]), None
    if short:
        if finite_only and not bool(torch.isfinite(log_decay).all()):
            return None
        return _stepwise_states(log_decay, drive)
    limit = LOG_DECAY_LIMIT[drive.dtype]
    largest = 2**int(math.log2(min(chunk, length)))
    blocks = _block_log_decay_sums(log_decay, largest, nonpositive, rate)
    # Any infinite or NaN log-decay makes its row's bound infinite or NaN (see there).
    if finite_only and not bool(torch.isfinite(blocks[BLOCK][0]).all()):
        return None
    # Work, in step-by-step position units, of each chunk length: the chunked passes, the rows
    # set aside, and the chunk ends' recurrence (priced step by step: an upper bound).
    costs = {2 * half: _CHUNKED_COST * rows * length
             + int((bound > limit).sum()) * length + rows * length / (2 * half)
             for half, (bound, _) in blocks.items() if half < largest}
    size = min(costs, key=costs.__getitem__)
    if costs[size] >= (1 - _CHUNKING_MIN_SAVING) * rows * length:  # all step by step
        return _stepwise_states(log_decay if rate is None else log_decay.mul_(rate[:, None]),
                                drive)
    bound, half_sums = blocks[size // 2]
    num_chunks = math.ceil(length / size)
    first_half = half_sums[:, 0:2 * num_chunks:2]  # M
    second_half = half_sums[:, 1:2 * num_chunks:2]  # S at the end minus M
    end_log_decay = blocks[size][1][:, :num_chunks]  # S at the chunk's end
    slow = (bound > limit).nonzero().flatten()
    if len(slow):  # solved step by step, from copies taken before the passes below
        slow_states = _stepwise_states(
            log_decay[slow] if rate is None else log_decay[slow] * rate[slow, None], drive[slow])
        log_decay.index_fill_(0, slow, 0.0)  # decay 1 here: finite whatever their steps
        first_half, second_half, end_log_decay = (
            t.index_fill(0, slow, 0.0) for t in (first_half, second_half, end_log_decay))
    pad = num_chunks * size - length
    if pad:  # identity steps
        log_decay, drive = F.pad(log_decay, (0, pad)), F.pad(drive, (0, pad))
    if workspace is None or pad:
        workspace = torch.empty_like(drive)
    from_start, from_middle = _chunk_sum_matrices(size, drive.dtype, drive.device)
    by_chunk, blocked = (-1, size), (rows, num_chunks, size)
    if rate is None:
        weight = _exact_matmul(log_decay.view(by_chunk), from_middle, out=workspace.view(by_chunk))
    else:  # one matrix per row, rate[row] * from_middle
        weight = _exact_matmul(log_decay.view(blocked), rate[:, None, None] * from_middle,
                               out=workspace.view(blocked))
    weight = weight.exp_().view(blocked)  # exp(S_t - M), in [e**-limit, e**limit]
    drive.view(blocked).div_(weight)
    state = _exact_matmul(drive.view(by_chunk), from_start, out=log_decay.view(by_chunk))
    state = state.view(blocked)  # h / exp(S_t - M) for h_in = 0
    if num_chunks > 1:
        end_state = state[..., -1] * second_half.exp()
        entering = chunked_states(end_log_decay.contiguous(), end_state, chunk, nonpositive)
        state[:, 1:].add_(entering[:, :-1, None] * first_half[:, 1:, None].exp())
    state = state.mul_(weight).view(rows, -1)[:, :length]
    if len(slow):
        state[slow] = slow_states
    return state
