"""Tests of the portable selective scan against the naive sequential recurrence."""
import importlib

import pytest
import torch

from mmrs.models.layers import selective_scan, selective_scan_reference

# The package re-exports the function under the module's name, so fetch the module itself.
ss_module = importlib.import_module('mmrs.models.layers.selective_scan')

NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias')


def make_inputs(batch: int = 2,
                kd: int = 8,
                length: int = 37,
                groups: int = 4,
                n: int = 3,
                dtype: torch.dtype = torch.float64,
                seed: int = 0,
                with_d: bool = True,
                with_bias: bool = True) -> dict[str, torch.Tensor | None]:
    """Random inputs in the ranges VMamba uses (A = -exp(A_log) < 0, small deltas)."""
    g = torch.Generator().manual_seed(seed)
    return dict(u=torch.randn(batch, kd, length, generator=g, dtype=dtype),
                delta=0.5 * torch.randn(batch, kd, length, generator=g, dtype=dtype),
                A=-torch.exp(torch.randn(kd, n, generator=g, dtype=dtype)),
                B=torch.randn(batch, groups, n, length, generator=g, dtype=dtype),
                C=torch.randn(batch, groups, n, length, generator=g, dtype=dtype),
                D=torch.randn(kd, generator=g, dtype=dtype) if with_d else None,
                delta_bias=0.3 * torch.randn(kd, generator=g, dtype=dtype) if with_bias else None)


def assert_rel_close(actual: torch.Tensor, expected: torch.Tensor, rel: float) -> None:
    """``|actual - expected| <= rel * max|expected|`` elementwise (relative to the output scale)."""
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=rel, atol=rel * scale)


class TestForward:

    @pytest.mark.parametrize('groups', [1, 4, 8])
    @pytest.mark.parametrize('with_d, with_bias, softplus', [(True, True, True),
                                                             (False, False, False),
                                                             (True, False, True),
                                                             (False, True, False)])
    def test_matches_reference_float64(self, groups, with_d, with_bias, softplus) -> None:
        x = make_inputs(groups=groups, with_d=with_d, with_bias=with_bias)
        expected = selective_scan_reference(**x, delta_softplus=softplus)
        actual = selective_scan(**x, delta_softplus=softplus, backend='torch', chunk_size=8)
        assert_rel_close(actual, expected, 1e-12)

    @pytest.mark.parametrize('chunk_size', [1, 2, 5, 16, 37, 64, 1000])
    @pytest.mark.parametrize('length', [1, 16, 37])
    def test_chunk_sizes_float32(self, chunk_size, length) -> None:
        """L not a multiple of the chunk, chunk 1 and chunk > L: 1e-5 relative in float32."""
        x = make_inputs(batch=3, length=length, dtype=torch.float32, seed=length)
        expected = selective_scan_reference(**x, delta_softplus=True)
        actual = selective_scan(**x, delta_softplus=True, backend='torch', chunk_size=chunk_size)
        assert actual.dtype == torch.float32 and actual.shape == (3, 8, length)
        assert_rel_close(actual, expected, 1e-5)

    def test_batch_elements_independent(self) -> None:
        x = make_inputs(batch=3)
        full = selective_scan(**x, backend='torch', chunk_size=4)
        one = {k: (v[1:2] if k in ('u', 'delta', 'B', 'C') else v) for k, v in x.items()}
        torch.testing.assert_close(full[1:2], selective_scan(**one, backend='torch', chunk_size=4))

    def test_strong_decay_does_not_overflow(self) -> None:
        """Log-decays summing to -1e4 per chunk: exponentiating their cumsum would overflow."""
        x = make_inputs(length=40, dtype=torch.float32)
        x['A'] = -50 * torch.ones_like(x['A'])
        x['delta'] = 5 + x['delta'].abs()
        expected = selective_scan_reference(**x, delta_softplus=False)
        actual = selective_scan(**x, delta_softplus=False, backend='torch', chunk_size=40)
        assert torch.isfinite(actual).all()
        assert_rel_close(actual, expected, 1e-5)

    def test_positive_a_matches_reference(self) -> None:
        """A > 0 (growing state) is evaluated as the recurrence defines it, without NaNs."""
        x = make_inputs(length=20)
        x['A'] = x['A'].abs()
        expected = selective_scan_reference(**x, delta_softplus=True)
        actual = selective_scan(**x, delta_softplus=True, backend='torch', chunk_size=8)
        assert_rel_close(actual, expected, 1e-10)

    def test_bfloat16_accumulates_in_float32(self) -> None:
        x = make_inputs(length=64, dtype=torch.float32)
        x_bf16 = {k: v.bfloat16() if v is not None else None for k, v in x.items()}
        # The oracle sees exactly the bf16-rounded values, computed in float32.
        expected = selective_scan_reference(**{
            k: v.float() if v is not None else None
            for k, v in x_bf16.items()
        },
                                            delta_softplus=True)
        actual = selective_scan(**x_bf16, delta_softplus=True, backend='torch', chunk_size=16)
        assert actual.dtype == torch.bfloat16
        # One rounding of the float32 result to bf16 (2**-8 relative), not an error accumulated in
        # bf16 over 64 positions.
        assert_rel_close(actual.float(), expected, 2**-8)

    def test_half_on_cpu(self) -> None:
        x = {
            k: v.half() if v is not None else None
            for k, v in make_inputs(length=10, dtype=torch.float32).items()
        }
        assert selective_scan(**x, backend='torch').dtype == torch.float16

    def test_bad_shapes_and_backend(self) -> None:
        x = make_inputs(groups=3, kd=8)
        with pytest.raises(ValueError, match='groups'):
            selective_scan(**x)
        with pytest.raises(ValueError, match='backend'):
            selective_scan(**make_inputs(), backend='triton')
        with pytest.raises(ValueError, match='chunk_size'):
            selective_scan(**make_inputs(), backend='torch', chunk_size=0)


class TestBackward:

    @pytest.mark.parametrize('groups, chunk_size', [(1, 5), (4, 8), (4, 64)])
    def test_gradients_match_reference(self, groups, chunk_size) -> None:
        x = make_inputs(length=21, groups=groups, seed=groups)
        leaves = [x[k].requires_grad_() for k in NAMES]
        weight = torch.randn(2,
                             8,
                             21,
                             dtype=torch.float64,
                             generator=torch.Generator().manual_seed(9))
        ref = (selective_scan_reference(*leaves, delta_softplus=True) * weight).sum()
        ours = (
            selective_scan(*leaves, delta_softplus=True, backend='torch', chunk_size=chunk_size) *
            weight).sum()
        for name, g_ref, g_ours in zip(NAMES, torch.autograd.grad(ref, leaves),
                                       torch.autograd.grad(ours, leaves)):
            assert g_ours is not None, name
            assert_rel_close(g_ours, g_ref, 1e-10)

    def test_gradients_float32(self) -> None:
        x = make_inputs(length=30, dtype=torch.float32)
        leaves = [x[k].requires_grad_() for k in NAMES]
        ref = selective_scan_reference(*leaves, delta_softplus=True).square().sum()
        ours = selective_scan(*leaves, delta_softplus=True, backend='torch',
                              chunk_size=8).square().sum()
        for g_ref, g_ours in zip(torch.autograd.grad(ref, leaves),
                                 torch.autograd.grad(ours, leaves)):
            assert_rel_close(g_ours, g_ref, 1e-5)

    def test_gradcheck(self) -> None:
        x = make_inputs(batch=1, kd=2, length=5, groups=2, n=2)
        leaves = tuple(x[k].requires_grad_() for k in NAMES)
        assert torch.autograd.gradcheck(
            lambda *t: selective_scan(*t, delta_softplus=True, backend='torch', chunk_size=2),
            leaves)


class TestBackendChoice:

    def test_cuda_backend_without_gpu_tensors_raises(self) -> None:
        with pytest.raises(RuntimeError, match="backend='cuda'"):
            selective_scan(**make_inputs(), backend='cuda')

    def test_auto_on_cpu_uses_torch_and_logs_once(self, monkeypatch) -> None:
        messages: list[str] = []
        monkeypatch.setattr(ss_module, '_LOGGED_CHOICES', set())
        monkeypatch.setattr(ss_module, 'print_log', lambda msg, **kw: messages.append(msg))
        x = make_inputs()
        for _ in range(3):
            y = selective_scan(**x)
        torch.testing.assert_close(y, selective_scan(**x, backend='torch'))
        assert messages == ['selective_scan: using the portable PyTorch implementation']

    @pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
    def test_torch_path_on_gpu_matches_reference(self) -> None:
        x = make_inputs(length=100, dtype=torch.float32)
        expected = selective_scan_reference(**x, delta_softplus=True)
        on_gpu = {k: v.cuda() for k, v in x.items()}
        actual = selective_scan(**on_gpu, delta_softplus=True, backend='torch')
        assert_rel_close(actual.cpu(), expected, 1e-5)
        if ss_module.available_cuda_backends():
            kernel = selective_scan(**on_gpu, delta_softplus=True, backend='cuda')
            assert_rel_close(kernel.cpu(), expected, 1e-4)
