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


def _stepwise_states(log_decay: Tensor, drive: Tensor) -> Tensor:
    """:func:`prefix_scan` of the steps ``(exp(log_decay_t), drive_t)`` along the last dim."""
    _, states = prefix_scan(log_decay.exp().unsqueeze(-1), drive.unsqueeze(-1), with_decay=False)
    return states.squeeze(-1)


def chunked_states(log_decay: Tensor, drive: Tensor, chunk: int) -> Tensor:
    """States of ``h_t = exp(log_decay_t) * h_{t-1} + drive_t`` along the last dim, ``h_{-1} = 0``.

    Forward only (no autograd graph is built). Chunks of ``T`` positions (a power of two,
    ``<= chunk``) are solved with chunk-local cumulative log-decays ``S_t`` and one ``cumsum``;
    the states entering the chunks solve the same recurrence over the chunk ends (log-decay
    ``S`` at the end, drive the chunk's own end state), a sequence ``T`` times shorter, by this
    function again, down to :func:`prefix_scan` on short ones.

    Exponentiating ``S`` is safe only while ``|S|`` stays within :data:`LOG_DECAY_LIMIT`, which
    holds when ``T * max_t |log_decay_t|`` does. ``T`` is the longest chunk (down to
    :data:`MIN_FAST_CHUNK`) for which at most 1/8 of the rows exceed that bound; those rows are
    copied before anything is overwritten and solved step by step (:func:`prefix_scan`), their
    log-decays zeroed in the main pass so that they stay finite there. So nothing overflows
    whatever the decay, and rows never mix. The rounding is that of a sum of the same terms, each
    weight rounded once, as in the recurrence.

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
    if length <= _SHORT or chunk < 2:  # short: the log-depth scan is cheap
        return _stepwise_states(log_decay, drive)
    limit = LOG_DECAY_LIMIT[drive.dtype]
    # (rows,): the largest |log-decay| of each row, so |S| <= T * step inside any chunk of T
    step = torch.maximum(log_decay.amax(dim=-1), log_decay.amin(dim=-1).neg_())
    size = 2**int(math.log2(min(chunk, length)))
    while size > MIN_FAST_CHUNK and (step * size > limit).sum() * 8 > rows:
        size //= 2
    slow = (step * size > limit).nonzero().flatten()
    if len(slow) * 2 > rows:  # mostly decays too strong even for MIN_FAST_CHUNK positions
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
