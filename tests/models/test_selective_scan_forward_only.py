"""The portable scan's forward-only (cumsum) path against the sequential reference.

Without autograd the portable backend exponentiates chunk-local cumulative log-decays; these
cases push it where that could overflow (channels with steps far too strong for the chunk next
to ordinary ones) and check that it still equals the reference loop, and that a call that needs
gradients still takes the prefix scan.
"""
import importlib

import pytest
import torch

from mmrs.models.layers import selective_scan, selective_scan_reference

ss_module = importlib.import_module('mmrs.models.layers.selective_scan')


def make_inputs(kd: int = 16, length: int = 100, groups: int = 4, n: int = 2,
                dtype: torch.dtype = torch.float32, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, kd, length, generator=g, dtype=dtype),
            0.5 * torch.randn(2, kd, length, generator=g, dtype=dtype),
            -torch.exp(torch.randn(kd, n, generator=g, dtype=dtype)),
            torch.randn(2, groups, n, length, generator=g, dtype=dtype),
            torch.randn(2, groups, n, length, generator=g, dtype=dtype),
            torch.randn(kd, generator=g, dtype=dtype),
            0.3 * torch.randn(kd, generator=g, dtype=dtype)]


def assert_rel_close(actual: torch.Tensor, expected: torch.Tensor, rel: float) -> None:
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=rel, atol=rel * scale)


@pytest.mark.parametrize('strong', [0, 1, 3, 9, 16])
def test_mixed_strong_and_weak_decays(strong: int) -> None:
    """``strong`` channels with |delta A| ~ 40 per step (a 64-chunk sums to ~2500): they would
    overflow exp(S) in float32, so they go through the prefix scan; the rest keep the cumsum."""
    u, delta, A, B, C, D, bias = make_inputs()
    A = A.clone()
    A[:strong] = -40.0
    delta = delta.clone()
    delta[:, :strong] = delta[:, :strong].abs() + 1.0
    args = (u, delta, A, B, C, D, bias)
    expected = selective_scan_reference(*args, delta_softplus=True)
    with torch.no_grad():
        actual = selective_scan(*args, delta_softplus=True, backend='torch', chunk_size=64)
    assert torch.isfinite(actual).all()
    assert_rel_close(actual, expected, 1e-5)


@pytest.mark.parametrize('chunk_size, length', [(64, 100), (48, 100), (16, 128), (1000, 7),
                                                (3, 10)])
def test_float64_chunks(chunk_size: int, length: int) -> None:
    args = make_inputs(length=length, dtype=torch.float64, seed=length)
    expected = selective_scan_reference(*args, delta_softplus=True)
    actual = selective_scan(*args, delta_softplus=True, backend='torch', chunk_size=chunk_size)
    assert_rel_close(actual, expected, 1e-12)


def test_positive_a_and_d_state_one() -> None:
    """A > 0 (growing state, log-decays of both signs) and VMamba's N = 1 layout."""
    u, delta, A, B, C, D, bias = make_inputs(n=1, length=40, dtype=torch.float64)
    A = A.abs() * 0.3
    expected = selective_scan_reference(u, delta, A, B, C, D, bias, delta_softplus=True)
    actual = selective_scan(u, delta, A, B, C, D, bias, delta_softplus=True, backend='torch')
    assert_rel_close(actual, expected, 1e-10)


def test_paths_are_chosen_by_grad_need(monkeypatch) -> None:
    calls: list[str] = []
    for name in ('_scan_cumsum', '_scan_prefix'):
        original = getattr(ss_module, name)
        monkeypatch.setattr(ss_module, name,
                            lambda *a, _o=original, _n=name: calls.append(_n) or _o(*a))
    args = make_inputs(length=20)
    args[2] = -0.5 * torch.ones_like(args[2])  # mild decays: no channel needs the prefix scan
    with torch.no_grad():
        no_grad = selective_scan(*args, backend='torch', chunk_size=8)
    assert calls == ['_scan_cumsum']
    calls.clear()
    leaves = [t.clone().requires_grad_() for t in args]
    with_grad = selective_scan(*leaves, backend='torch', chunk_size=8)
    assert calls == ['_scan_prefix'] and with_grad.requires_grad
    assert_rel_close(no_grad, with_grad.detach(), 1e-5)


def test_softplus_at_extreme_steps() -> None:
    """Steps past exp's float32 range (softplus(x) = x there), past the kernel's threshold of
    20, and far below zero, as F.softplus gives them."""
    u, delta, A, B, C, D, bias = make_inputs(length=300, n=1)
    delta = delta.clone()
    delta[0, 0, 10] = 95.0  # exp overflows: the kernel's own softplus is used for the call
    delta[0, 1, 20:30] = 30.0
    delta[1, 2, 5:200] = -200.0
    args = (u, delta, A, B, C, D, bias)
    expected = selective_scan_reference(*args, delta_softplus=True)
    with torch.no_grad():
        actual = selective_scan(*args, delta_softplus=True, backend='torch')
        delta[0, 0, 10] = 85.0  # exp stays finite: log1p(exp(x)) = x to rounding
        expected_85 = selective_scan_reference(*args, delta_softplus=True)
        actual_85 = selective_scan(*args, delta_softplus=True, backend='torch')
    assert torch.isfinite(actual).all() and torch.isfinite(actual_85).all()
    assert_rel_close(actual, expected, 1e-5)
    assert_rel_close(actual_85, expected_85, 1e-5)


@pytest.mark.parametrize('softplus, a_sign, told', [(True, -1, True), (False, -1, False),
                                                      (True, 1, False)])
def test_decays_are_assumed_only_when_guaranteed(monkeypatch, softplus: bool, a_sign: int,
                                                 told: bool) -> None:
    """chunked_states is told that every log-decay is <= 0 only for softplus steps (>= 0) and
    A <= 0; without softplus a negative step with A < 0 is a growing state."""
    seen = []
    original = ss_module.chunked_states

    def record(*args, nonpositive=False, **kwargs):
        seen.append(nonpositive)
        return original(*args, nonpositive=nonpositive, **kwargs)

    monkeypatch.setattr(ss_module, 'chunked_states', record)
    u, delta, A, B, C, D, bias = make_inputs(length=400, n=1)
    delta = 0.02 * torch.randn(delta.shape, generator=torch.Generator().manual_seed(4))
    A = a_sign * 0.05 * torch.ones_like(A)  # |delta A| small: finite states either way
    expected = selective_scan_reference(u, delta, A, B, C, D, bias, delta_softplus=softplus)
    with torch.no_grad():
        actual = selective_scan(u, delta, A, B, C, D, bias, delta_softplus=softplus,
                                backend='torch')
    assert seen == [told]
    assert_rel_close(actual, expected, 1e-5)


@pytest.mark.parametrize('length', [50, 300])
@pytest.mark.parametrize('bias, softplus', [(False, False), (True, False), (False, True)])
def test_scratch_contents_never_leak_in(length: int, bias: bool, softplus: bool) -> None:
    """Whatever the reused scratch memory holds before the call, every buffer the scan reads is
    written first (with and without bias / softplus, short and chunked sequences)."""
    from mmrs.models.layers.scratch import release_scratch, scratch_tensors
    u, delta, A, B, C, D, delta_bias = make_inputs(length=length, n=1)
    delta = 0.1 * delta.abs() if not softplus else delta
    delta_bias = delta_bias.abs() if bias else None  # steps >= 0 without softplus too
    expected = selective_scan_reference(u, delta, A, B, C, D, delta_bias,
                                        delta_softplus=softplus)
    with torch.no_grad():
        for garbage in (7.0, float('nan')):
            release_scratch()
            scratch_tensors([(10**6, )], torch.float32, torch.device('cpu'))[0].fill_(garbage)
            actual = selective_scan(u, delta, A, B, C, D, delta_bias, delta_softplus=softplus,
                                    backend='torch')
            assert_rel_close(actual, expected, 1e-5)
    release_scratch()
