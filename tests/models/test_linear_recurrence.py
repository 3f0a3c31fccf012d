"""``chunked_states`` and ``prefix_scan`` against a step-by-step loop; the scan's scratch reuse."""
import pytest
import torch

from mmrs.models.layers import selective_scan, selective_scan_reference
import mmrs.models.layers.linear_recurrence as linear_recurrence
from mmrs.models.layers.linear_recurrence import chunked_states, prefix_scan
from mmrs.models.layers.scratch import release_scratch, scratch_tensors


def loop_states(log_decay: torch.Tensor, drive: torch.Tensor) -> torch.Tensor:
    """h_t = exp(log_decay_t) h_{t-1} + drive_t, one position at a time, in float64."""
    h = torch.zeros(log_decay.shape[0], dtype=torch.float64)
    out = []
    for t in range(log_decay.shape[1]):
        h = torch.exp(log_decay[:, t].double()) * h + drive[:, t].double()
        out.append(h)
    return torch.stack(out, 1)


def rows_with_mixed_decays(length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows whose steps range from none to ~200 per position (far past exp's float32 range
    over a chunk), plus rows of both signs (growing states, kept small)."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.tensor([0.0, 0.01, 0.3, 1.0, 3.0, 10.0, 40.0, 200.0] * 3)
    log_decay = -scale[:, None] * torch.rand(len(scale), length, generator=g)
    log_decay[-3:] = 0.02 * torch.randn(3, length, generator=g)  # either sign
    drive = torch.randn(len(scale), length, generator=g)
    return log_decay, drive


@pytest.mark.parametrize('length, chunk', [(4096, 64), (1000, 64), (257, 16), (64, 64), (7, 64),
                                           (3000, 1)])
def test_chunked_states_equal_the_loop(length: int, chunk: int) -> None:
    log_decay, drive = rows_with_mixed_decays(length, seed=length)
    expected = loop_states(log_decay, drive)
    actual = chunked_states(log_decay.clone(), drive.clone(), chunk)
    assert torch.isfinite(actual).all()
    torch.testing.assert_close(actual.double(), expected, rtol=1e-5,
                               atol=1e-5 * expected.abs().max().item())


def test_chunked_states_float64() -> None:
    log_decay, drive = rows_with_mixed_decays(999)
    expected = loop_states(log_decay, drive)
    actual = chunked_states(log_decay.double(), drive.double(), 64)
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


def largest_chunk_excursion(log_decay: torch.Tensor, size: int) -> torch.Tensor:
    """max over chunks [k size, (k + 1) size) of max_t |sum of the chunk's log-decays up to t|,
    by walking every chunk position by position (float64)."""
    out = torch.zeros(log_decay.shape[0], dtype=torch.float64)
    for row in range(log_decay.shape[0]):
        for start in range(0, log_decay.shape[1], size):
            running = 0.0
            for value in log_decay[row, start:start + size].double().tolist():
                running += value
                out[row] = max(out[row].item(), abs(running))
    return out


def test_block_bounds_exact_for_decaying_rows_and_safe_for_the_others() -> None:
    log_decay, _ = rows_with_mixed_decays(1000)  # not a multiple of the 8-position blocks
    log_decay[-2, 500] = 3.0  # a growing step in a row of either sign
    blocks = linear_recurrence._block_log_decay_sums(log_decay, 64)
    assert sorted(blocks) == [8, 16, 32, 64]
    padded = torch.cat([log_decay, torch.zeros(len(log_decay), 24)], 1).double()
    for size, (bound, sums) in blocks.items():
        truth = largest_chunk_excursion(log_decay, size)
        decaying = (log_decay <= 0).all(1)
        torch.testing.assert_close(bound[decaying].double(), truth[decaying], rtol=1e-5,
                                   atol=1e-4)
        assert (bound[~decaying].double() >= truth[~decaying] - 1e-6).all()
        torch.testing.assert_close(sums.double(), padded.view(len(padded), -1, size).sum(-1),
                                   rtol=1e-5, atol=1e-4)
    # told that every log-decay is <= 0, it does not look for other rows (same bounds there)
    told = linear_recurrence._block_log_decay_sums(log_decay, 64, nonpositive=True)
    for size in blocks:
        assert torch.equal(told[size][0][decaying], blocks[size][0][decaying])


def test_chunk_sum_matrices() -> None:
    """Against explicit sums: from the chunk's start, and from its middle (S_t - S_{T/2-1})."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(7, 16, dtype=torch.float64, generator=g)
    from_start, from_middle = linear_recurrence._chunk_sum_matrices(16, torch.float64,
                                                                    torch.device('cpu'))
    for row in range(7):
        for t in range(16):
            assert torch.isclose((x @ from_start)[row, t], x[row, :t + 1].sum())
            assert torch.isclose((x @ from_middle)[row, t], x[row, :t + 1].sum()
                                 - x[row, :8].sum())


@pytest.mark.parametrize('device_type, setting', [('cpu', 'mkldnn.matmul'), ('cpu', 'global'),
                                                  ('cuda', 'cuda.matmul'), ('cuda', 'global')])
def test_low_precision_matmul_settings_are_detected(device_type: str, setting: str) -> None:
    """Float32 products that may be rounded to TF32 / bfloat16 must not sum the chunks."""
    exact = linear_recurrence._exact_float32_matmul
    assert exact(device_type)
    target = {'mkldnn.matmul': torch.backends.mkldnn.matmul, 'global': torch.backends,
              'cuda.matmul': torch.backends.cuda.matmul}[setting]
    before = target.fp32_precision
    try:
        target.fp32_precision = 'bf16' if device_type == 'cpu' else 'tf32'
        assert not exact(device_type)
        target.fp32_precision = 'ieee'
        assert exact(device_type)
    finally:
        target.fp32_precision = before
    assert exact(device_type)


def test_tf32_switch_is_detected() -> None:
    before = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = True  # the switch training scripts flip
        assert not linear_recurrence._exact_float32_matmul('cuda')
        assert linear_recurrence._exact_float32_matmul('cpu')
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def test_chunked_states_without_exact_float32_matmul(monkeypatch) -> None:
    """The float64 products used then give the same states."""
    monkeypatch.setattr(linear_recurrence, '_exact_float32_matmul', lambda device_type: False)
    calls = []
    monkeypatch.setattr(torch, 'matmul', lambda *a, **k: calls.append(1))  # must not be used
    log_decay, drive = rows_with_mixed_decays(2048, seed=9)
    expected = loop_states(log_decay, drive)
    actual = chunked_states(log_decay.clone(), drive.clone(), 64)
    assert not calls
    torch.testing.assert_close(actual.double(), expected, rtol=1e-5,
                               atol=1e-5 * expected.abs().max().item())


def test_brief_strong_decay_is_not_solved_step_by_step(monkeypatch) -> None:
    """The bound is the chunk's sum, not its length times its strongest step: one step of 50 in
    a row of weak decays fits a 64-position chunk (|S| <= 60), so no row is set aside."""
    g = torch.Generator().manual_seed(3)
    log_decay = -0.01 * torch.rand(16, 4096, generator=g)
    log_decay[:, 1000] = -50.0
    drive = torch.randn(16, 4096, generator=g)
    stepwise = []
    original = linear_recurrence._stepwise_states

    def record(ld: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        stepwise.append(tuple(ld.shape))
        return original(ld, b)

    monkeypatch.setattr(linear_recurrence, '_stepwise_states', record)
    actual = chunked_states(log_decay.clone(), drive.clone(), 64)
    assert all(shape[0] == 16 and shape[1] <= 64 for shape in stepwise), stepwise  # ends only
    expected = loop_states(log_decay, drive)
    torch.testing.assert_close(actual.double(), expected, rtol=1e-5,
                               atol=1e-5 * expected.abs().max().item())


def test_prefix_scan_equals_the_loop() -> None:
    log_decay, drive = rows_with_mixed_decays(333)
    _, states = prefix_scan(log_decay.exp().unsqueeze(-1), drive.unsqueeze(-1), with_decay=False)
    torch.testing.assert_close(states.squeeze(-1).double(), loop_states(log_decay, drive),
                               rtol=1e-5, atol=1e-5)


def test_scratch_views_are_reused_and_disjoint() -> None:
    release_scratch()
    a, b = scratch_tensors([(3, 5), (7, )], torch.float32, torch.device('cpu'))
    a.fill_(1.0)
    b.fill_(2.0)
    assert (a == 1).all() and (b == 2).all()  # no overlap
    a2, = scratch_tensors([(2, 2)], torch.float32, torch.device('cpu'))
    assert a2.data_ptr() == a.data_ptr()  # the same memory, not a new allocation
    release_scratch()


def test_scan_outputs_survive_later_calls() -> None:
    """The scratch buffer is reused by the next call: results must not live in it."""
    g = torch.Generator().manual_seed(0)

    def inputs(length: int) -> list[torch.Tensor]:
        return [torch.randn(1, 8, length, generator=g), torch.randn(1, 8, length, generator=g),
                -torch.rand(8, 1, generator=g), torch.randn(1, 2, 1, length, generator=g),
                torch.randn(1, 2, 1, length, generator=g), torch.randn(8, generator=g),
                torch.randn(8, generator=g)]

    first = inputs(100)
    with torch.no_grad():
        y1 = selective_scan(*first, delta_softplus=True, backend='torch')
        kept = y1.clone()
        selective_scan(*inputs(100), delta_softplus=True, backend='torch')
        selective_scan(*inputs(300), delta_softplus=True, backend='torch')
    assert torch.equal(y1, kept)
    torch.testing.assert_close(y1, selective_scan_reference(*first, delta_softplus=True),
                               rtol=1e-5, atol=1e-5)


def test_scan_without_bias_or_softplus_leaves_delta_alone() -> None:
    g = torch.Generator().manual_seed(1)
    u, delta = torch.randn(2, 4, 50, generator=g), 0.1 * torch.rand(2, 4, 50, generator=g)
    A, B, C = -torch.rand(4, 2, generator=g), torch.randn(2, 1, 2, 50, generator=g), torch.randn(
        2, 1, 2, 50, generator=g)
    before = delta.clone()
    with torch.no_grad():
        y = selective_scan(u, delta, A, B, C, backend='torch')
    assert torch.equal(delta, before)
    torch.testing.assert_close(y, selective_scan_reference(u, delta, A, B, C), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize('length', [1, 2, 7, 64, 333])
def test_forward_scan_equals_prefix_scan_to_the_bit(length: int) -> None:
    log_decay, drive = rows_with_mixed_decays(length, seed=length)
    decay = log_decay.exp()
    _, expected = prefix_scan(decay.unsqueeze(-1), drive.unsqueeze(-1), with_decay=False)
    assert torch.equal(linear_recurrence._scan_states(decay, drive), expected.squeeze(-1))


@pytest.mark.parametrize('nonpositive, length', [(True, 4096), (False, 4096), (True, 50)])
def test_rate_is_the_multiplied_out_log_decay(nonpositive: bool, length: int) -> None:
    """steps * rate as log-decays, read with rate unmultiplied (a matrix per row) or not."""
    g = torch.Generator().manual_seed(11)
    steps = torch.rand(24, length, generator=g)
    steps[3, 100 % length] = 80.0  # a row set aside
    rate = -torch.exp(2 * torch.randn(24, generator=g))  # |A| from ~0.02 to ~50
    if not nonpositive:
        rate[::5] *= -0.01  # some growing rows
    drive = torch.randn(24, length, generator=g)
    expected = loop_states(steps * rate[:, None], drive)
    actual = chunked_states(steps.clone(), drive.clone(), 64, nonpositive=nonpositive,
                            rate=rate)
    torch.testing.assert_close(actual.double(), expected, rtol=1e-5,
                               atol=1e-5 * expected.abs().max().item())


def test_rate_needs_known_decays() -> None:
    with pytest.raises(ValueError, match='known decays'):
        linear_recurrence._block_log_decay_sums(torch.zeros(2, 64), 64, rate=torch.ones(2))


@pytest.mark.parametrize('nonpositive', [True, False])
@pytest.mark.parametrize('value', [float('-inf'), float('inf'), float('nan')])
def test_non_finite_log_decays_are_reported(nonpositive: bool, value: float) -> None:
    """finite_only: None for any infinite / NaN log-decay (long and short sequences), and the
    bound of that row is not finite."""
    for length in (4096, 50):
        g = torch.Generator().manual_seed(length)
        log_decay = -torch.rand(6, length, generator=g)
        drive = torch.randn(6, length, generator=g)
        if nonpositive and value == float('inf'):
            continue  # not a decay
        log_decay[4, length // 3] = value
        if length > 64:
            bounds = linear_recurrence._block_log_decay_sums(log_decay, 64, nonpositive)
            assert not torch.isfinite(bounds[8][0][4]) and torch.isfinite(bounds[8][0][:4]).all()
        assert chunked_states(log_decay.clone(), drive.clone(), 64, nonpositive=nonpositive,
                              finite_only=True) is None
        clean = -torch.rand(6, length, generator=g)
        assert chunked_states(clean, drive.clone(), 64, nonpositive=nonpositive,
                              finite_only=True) is not None
