"""First-order linear recurrences ``h_t = a_t h_{t-1} + b_t`` along a tensor dimension, vectorised.

The selective scan (:mod:`mmrs.models.layers.selective_scan`) is such a recurrence per channel and
state. Two evaluations live here:

- :func:`prefix_scan`, a work-efficient parallel prefix scan of the steps ``h -> a h + b``
  (autograd-friendly: only products and sums of the decays themselves);
- :func:`chunked_states`, the forward-only form used for inference: inside chunks of ``T``
  positions, with chunk-local cumulative log-decays ``S_t``, ``h_t = exp(S_t) * (h_in +
  sum_{s<=t} b_s / exp(S_s))``, one ``cumsum`` per chunk instead of ``log2(T)`` levels, and a
  prefix scan over the chunk ends for ``h_in``.
"""
import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['LOG_DECAY_LIMIT', 'MIN_FAST_CHUNK', 'chunked_states', 'prefix_scan']

#: Largest ``|S|`` (cumulative log-decay inside one chunk) :func:`chunked_states` exponentiates,
#: per dtype: ``exp(+-S)`` times the drive stays far from overflow and from subnormals (float32
#: ends near ``e**88``, its normal numbers near ``e**-87``).
LOG_DECAY_LIMIT = {torch.float32: 60.0, torch.float64: 600.0}
#: Shortest chunk of :func:`chunked_states`; rows whose decays are too strong even for it take
#: :func:`prefix_scan`.
MIN_FAST_CHUNK = 8


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


#: Sequences this short go straight to :func:`prefix_scan` (a handful of levels).
_SHORT = 64
#: The chunk-length choice of :func:`chunked_states` prices its work in positions solved by
#: :func:`prefix_scan` (~7 ns per float32 position on one CPU thread). Its own passes cost ~2.5 ns
#: per position, ~3 ns with 8-position chunks (adding the entering states over a broadcast of
#: 8 runs at a third of the speed of longer ones): measured, 768 rows x 4096, 1 thread.
_CHUNKED_COST, _CHUNKED_COST_8 = 0.35, 0.42
#: Chunking a sequence must save at least this fraction of the step-by-step work, or the whole
#: sequence is solved step by step: the chunk ends' recursion on short sequences pays per-op
#: overheads the prices above leave out (768 x 512 chunk ends: chunked 19 ns, step by step 7 ns
#: per position).
_CHUNKING_MIN_SAVING = 0.3


def _chunked_cost(size: int) -> float:
    return _CHUNKED_COST_8 if size <= 8 else _CHUNKED_COST


def _stepwise_states(log_decay: Tensor, drive: Tensor) -> Tensor:
    """:func:`prefix_scan` of the steps ``(exp(log_decay_t), drive_t)`` along the last dim."""
    _, states = prefix_scan(log_decay.exp().unsqueeze(-1), drive.unsqueeze(-1), with_decay=False)
    return states.squeeze(-1)


def _chunk_log_decay_bounds(log_decay: Tensor, largest: int) -> dict[int, Tensor]:
    """``{T: (rows,)}`` for ``T = MIN_FAST_CHUNK, 2 MIN_FAST_CHUNK, ..., largest``: a bound on
    ``|S|`` (the cumulative log-decay from a chunk's start) over every chunk of ``T`` positions.

    Exact for rows whose log-decays are all ``<= 0`` (decays in ``(0, 1]``, as the selective
    scan's ``exp(delta A)`` with ``delta >= 0`` and ``A < 0``): ``S`` falls monotonically, so its
    largest magnitude is the chunk's whole sum, read from sums over ``MIN_FAST_CHUNK`` positions
    added pairwise. Other rows get ``T * max |log-decay|``. Two reads of ``log_decay``.
    """
    rows, length = log_decay.shape
    block = MIN_FAST_CHUNK
    padded = log_decay if length % largest == 0 else F.pad(log_decay, (0, -length % largest))
    # (rows, L / block) by a matrix-vector product: several times faster than sum(-1) over
    # 8-wide rows
    sums = (padded.reshape(-1, block) @ padded.new_ones(block)).view(rows, -1)
    top = log_decay.amax(dim=-1)
    mixed = (top > 0).nonzero().flatten()
    step = log_decay[mixed].abs().amax(dim=-1) if len(mixed) else None
    bounds, size = {}, block
    while size <= largest:
        bound = sums.amin(dim=-1).neg_()  # the most negative chunk sum
        if step is not None:
            bound[mixed] = step * size
        bounds[size] = bound
        if size < largest:  # L / block is a multiple of largest / block: pairs always fit
            sums = sums[:, 0::2] + sums[:, 1::2]
        size *= 2
    return bounds


def chunked_states(log_decay: Tensor, drive: Tensor, chunk: int) -> Tensor:
    """States of ``h_t = exp(log_decay_t) * h_{t-1} + drive_t`` along the last dim, ``h_{-1} = 0``.

    Forward only (no autograd graph is built). Chunks of ``T`` positions (a power of two,
    ``<= chunk``) are solved with chunk-local cumulative log-decays ``S_t`` and one ``cumsum``;
    the states entering the chunks solve the same recurrence over the chunk ends (log-decay
    ``S`` at the end, drive the chunk's own end state), a sequence ``T`` times shorter, by this
    function again, or step by step (:func:`prefix_scan`) where chunking would not save enough.

    Exponentiating ``S`` is safe only while ``|S|`` stays within :data:`LOG_DECAY_LIMIT`, checked
    per row and chunk length before anything is exponentiated (exactly where the decays are at
    most 1, see :func:`_chunk_log_decay_bounds`). ``T`` (from :data:`MIN_FAST_CHUNK` to
    ``chunk``) is the one of least estimated work: the chunked passes, the rows whose bound
    exceeds the limit, and the chunk ends. Those rows are copied before anything is overwritten
    and solved step by step (:func:`prefix_scan`), their log-decays zeroed in the main pass so
    that they stay finite there. So nothing overflows whatever the decay, and rows never mix.
    The rounding is that of a sum of the same terms, each weight rounded once, as in the
    recurrence.

    Args:
        log_decay: ``(rows, L)``, the log of every step's decay (``delta_t * A`` for the selective
            scan). Overwritten.
        drive: ``(rows, L)``, the inputs ``b_t``. Overwritten with the result.
        chunk: Longest chunk, in positions.

    Returns:
        ``h`` of shape ``(rows, L)``, in ``drive``'s memory unless ``L`` had to be padded to
        whole chunks (give ``L`` a multiple of ``chunk`` to avoid that copy).
    """
    rows, length = drive.shape
    if length <= _SHORT or chunk < MIN_FAST_CHUNK:  # short: the log-depth scan is cheap
        return _stepwise_states(log_decay, drive)
    limit = LOG_DECAY_LIMIT[drive.dtype]
    peak = _chunk_log_decay_bounds(log_decay, 2**int(math.log2(min(chunk, length))))
    # Work, in step-by-step position units, of each chunk length: the chunked passes, the rows
    # set aside, and the chunk ends' recurrence (priced step by step: an upper bound).
    costs = {size: _chunked_cost(size) * rows * length + int((bound > limit).sum()) * length
             + rows * length / size for size, bound in peak.items()}
    size = min(costs, key=costs.__getitem__)
    slow = (peak[size] > limit).nonzero().flatten()
    if costs[size] >= (1 - _CHUNKING_MIN_SAVING) * rows * length:  # all step by step
        return _stepwise_states(log_decay, drive)
    if len(slow):  # solved step by step, from copies taken before the passes below
        slow_states = _stepwise_states(log_decay[slow], drive[slow])
        log_decay.index_fill_(0, slow, 0.0)  # decay 1 here: finite whatever their steps
    num_chunks = math.ceil(length / size)
    pad = num_chunks * size - length
    if pad:  # identity steps
        log_decay, drive = F.pad(log_decay, (0, pad)), F.pad(drive, (0, pad))
    cum = log_decay.view(rows, num_chunks, size).cumsum_(-1)  # S_t
    # The chunk ends' own recurrence: decay exp(S_end), drive the end state from h_in = 0.
    end_log_decay = cum[..., -1].clone()
    cum_decay = cum.exp_()  # exp(S_t), within [e**-limit, e**limit]
    state = drive.view(rows, num_chunks, size).div_(cum_decay).cumsum_(-1)  # h / exp(S_t)
    if num_chunks > 1:
        entering = chunked_states(end_log_decay, state[..., -1] * cum_decay[..., -1], chunk)
        state[:, 1:].add_(entering[:, :-1, None])  # h_in / exp(0), decayed below
    state = state.mul_(cum_decay).view(rows, -1)[:, :length]
    if len(slow):
        state[slow] = slow_states
    return state
