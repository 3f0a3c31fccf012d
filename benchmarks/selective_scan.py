"""How fast the portable selective scan runs against the naive per-position loop (and a kernel).

    nice -n 10 python benchmarks/selective_scan.py [--lengths 1024 4096 16384] [--repeats 3]
        [--device cpu] [--threads 1] [--naive-max-seconds 300] [--interleaved-rounds 9]
        [--out FILE]

Shapes are MambaBCD-T's (VMamba-T, ChangeMamba's ``vssm_tiny_224_0229flex``: dims 96 doubling per
stage, ``ssm_ratio`` 2, ``ssm_d_state`` 1, four scan directions, read from
:data:`mmrs.models.backbones.vmamba.ARCH_SETTINGS`): one SS2D call of stage ``s`` at input size
``S`` scans ``L = (S / 2^(s+1))^2`` positions of ``D = 4 * ssm_ratio * dims * 2^(s-1)`` channels
(four B/C groups) with ``N = d_state``. The lengths map to ``L=1024``: stage 2 at 256 x 256 (the
LEVIR-CD / WHU-CD crops; D 1536), ``L=4096``: stage 1 at 256 (D 768), ``L=16384``: stage 1 at
512 x 512 (SECOND-sized; D 768); batch 1.

Rows (``impl``): ``naive`` is :func:`~mmrs.models.layers.selective_scan_reference`, the
sequential loop over positions that the official VMamba code falls back to without its CUDA
kernel (``selective_scan_torch`` of ``csms6s.py``, the same loop as mamba_ssm's
``selective_scan_ref``); ``portable`` is ``selective_scan(backend='torch')``; with
``--device cuda`` and an importable kernel (:func:`available_cuda_backends`) a row named after the
kernel is added. ``pass`` is ``fwd`` (no autograd) or ``fwd+bwd`` (forward, then backward of the
output sum into all seven inputs). ``seconds`` is the median of ``repeats`` timed runs after one
warm-up. The naive backward is quadratic in ``L`` (each step's slice of the inputs receives a
full-size gradient), so naive rows whose time, extrapolated from the previous length, would exceed
``--naive-max-seconds`` are timed once without warm-up, or, if even that estimate exceeds it,
recorded with ``seconds: null`` and the estimate. Every record also says how the output (and,
where the naive backward ran, the input gradients) agree with the naive loop. Rows timed minutes
apart see a shared machine at different speeds, so ``interleaved_fwd_speedup_over_naive`` also
times the two forward passes back to back, ``--interleaved-rounds`` times per length, and gives
the median, least and largest ratio. Writes ``benchmarks/results/selective_scan.json``.
"""
import argparse
import json
import os.path as osp
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, REPO_ROOT)

from mmrs.models.backbones.vmamba import ARCH_SETTINGS  # noqa: E402
from mmrs.models.layers import selective_scan, selective_scan_reference  # noqa: E402
from mmrs.models.layers.selective_scan import available_cuda_backends  # noqa: E402

#: Which MambaBCD-T SS2D call each benchmarked length is: (input size, stage 1..4).
STAGE_OF_LENGTH = {1024: (256, 2), 4096: (256, 1), 16384: (512, 1), 256: (256, 3)}
NUM_DIRECTIONS = 4


def stage_shape(length: int, arch: str = 'tiny') -> dict:
    """``L``, ``D``, ``N`` (and where they come from) of the SS2D call with ``length``."""
    if length not in STAGE_OF_LENGTH:
        raise ValueError(f'no MambaBCD stage has L={length}; choose from {sorted(STAGE_OF_LENGTH)}')
    size, stage = STAGE_OF_LENGTH[length]
    settings = ARCH_SETTINGS[arch]
    side = size // (4 * 2**(stage - 1))
    assert side * side == length
    width = settings['dims'] * 2**(stage - 1)
    channels = NUM_DIRECTIONS * int(settings['ssm_ratio'] * width)
    return dict(L=length, D=channels, N=settings['ssm_d_state'],
                where=f'MambaBCD-{arch[0].upper()} stage {stage} at {size}x{size} '
                f'({side}x{side} tokens, width {width})')


def make_inputs(length: int, channels: int, d_state: int, device: str) -> list[torch.Tensor]:
    """SS2D-like scan inputs: u, delta, A = -exp(.), B, C (4 groups), D, delta_bias."""
    g = torch.Generator().manual_seed(0)
    tensors = [
        torch.randn(1, channels, length, generator=g),
        0.5 * torch.randn(1, channels, length, generator=g),
        -torch.exp(torch.randn(channels, d_state, generator=g)),
        torch.randn(1, NUM_DIRECTIONS, d_state, length, generator=g),
        torch.randn(1, NUM_DIRECTIONS, d_state, length, generator=g),
        torch.randn(channels, generator=g),
        0.3 * torch.randn(channels, generator=g),
    ]
    return [t.to(device) for t in tensors]


def run_once(fn: Callable[..., torch.Tensor], inputs: list[torch.Tensor],
             backward: bool) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    leaves = [t.detach().requires_grad_(backward) for t in inputs]
    with torch.set_grad_enabled(backward):
        y = fn(*leaves)
        if backward:
            y.sum().backward()
    if y.is_cuda:
        torch.cuda.synchronize()
    return y.detach(), ([t.grad for t in leaves] if backward else None)


def time_pass(fn: Callable[..., torch.Tensor], inputs: list[torch.Tensor], backward: bool,
              repeats: int, warmup: bool) -> tuple[float, torch.Tensor, list | None]:
    """Median seconds of ``repeats`` runs, and the output / gradients of the last one."""
    if warmup:
        run_once(fn, inputs, backward)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out, grads = run_once(fn, inputs, backward)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out, grads


def interleaved_ratios(naive: Callable[..., torch.Tensor], portable: Callable[..., torch.Tensor],
                       inputs: list[torch.Tensor], rounds: int) -> list[float]:
    """Per round, naive forward seconds over portable forward seconds, the two run back to
    back (after one warm-up each), so that a shared machine's drift in speed, which moves the
    separately timed rows by 10-30%, cancels out of each ratio."""
    run_once(naive, inputs, False)
    run_once(portable, inputs, False)
    ratios = []
    for _ in range(rounds):
        start = time.perf_counter()
        run_once(naive, inputs, False)
        middle = time.perf_counter()
        run_once(portable, inputs, False)
        ratios.append((middle - start) / (time.perf_counter() - middle))
    return ratios


def max_diffs(actual: torch.Tensor, expected: torch.Tensor) -> tuple[float, float]:
    """Max abs difference and that difference relative to the largest expected magnitude."""
    diff = (actual.double() - expected.double()).abs().max().item()
    return diff, diff / max(expected.abs().max().item(), 1e-30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--lengths', type=int, nargs='+', default=[1024, 4096, 16384])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--chunk-size', type=int, default=64)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads (1 is steadier on a shared machine)')
    parser.add_argument('--naive-max-seconds', type=float, default=300.0,
                        help='time a naive row once (no warm-up) when its extrapolated '
                        'repeats would exceed this, and skip it when one run would')
    parser.add_argument('--interleaved-rounds', type=int, default=9,
                        help='rounds of naive fwd then portable fwd, one after the other, per '
                        'length: the speed-up measured free of the machine\'s drift between '
                        'the rows above (0 skips it)')
    parser.add_argument('--out', default=osp.join(REPO_ROOT, 'benchmarks', 'results',
                                                  'selective_scan.json'))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    impls: dict[str, Callable[..., torch.Tensor]] = {
        'naive': lambda *t: selective_scan_reference(*t, delta_softplus=True),
        'portable': lambda *t: selective_scan(*t, delta_softplus=True, backend='torch',
                                              chunk_size=args.chunk_size),
    }
    if args.device.startswith('cuda'):
        for name in available_cuda_backends()[:1]:
            impls[name] = lambda *t: selective_scan(*t, delta_softplus=True, backend='cuda')

    records, shapes = [], []
    naive_seconds: dict[str, tuple[int, float]] = {}  # pass -> (L, seconds) last measured
    for length in sorted(args.lengths):
        shape = stage_shape(length)
        shapes.append(shape)
        inputs = make_inputs(length, shape['D'], shape['N'], args.device)
        naive_out: dict[str, tuple] = {}
        for impl, fn in impls.items():
            for backward in (False, True):
                pass_name = 'fwd+bwd' if backward else 'fwd'
                record = {'impl': impl, 'L': length, 'D': shape['D'], 'N': shape['N'],
                          'pass': pass_name}
                repeats, warmup = args.repeats, True
                if impl == 'naive' and pass_name in naive_seconds:
                    prev_length, prev = naive_seconds[pass_name]
                    power = 2 if backward else 1  # the naive backward is quadratic in L
                    estimate = prev * (length / prev_length)**power
                    if estimate > args.naive_max_seconds:
                        record.update(seconds=None, estimated_seconds=round(estimate, 1),
                                      note='not run: one run is estimated to exceed '
                                      f'--naive-max-seconds={args.naive_max_seconds:g}')
                        records.append(record)
                        print(json.dumps(record), flush=True)
                        continue
                    if estimate * (args.repeats + 1) > args.naive_max_seconds:
                        repeats, warmup = 1, False
                seconds, out, grads = time_pass(fn, inputs, backward, repeats, warmup)
                if impl == 'naive':
                    naive_seconds[pass_name] = (length, seconds)
                    naive_out[pass_name] = (out, grads)
                record.update(seconds=round(seconds, 5), repeats=repeats, warmup=warmup)
                ref_out = next((o for o, _ in naive_out.values()), None)
                if ref_out is not None:
                    abs_diff, rel_diff = max_diffs(out, ref_out)
                    record.update(max_abs_diff_to_naive=abs_diff,
                                  max_rel_diff_to_naive=rel_diff)
                if backward and naive_out.get('fwd+bwd') and naive_out['fwd+bwd'][1]:
                    ref_grads = naive_out['fwd+bwd'][1]
                    record['max_grad_rel_diff_to_naive'] = max(
                        max_diffs(g, r)[1] for g, r in zip(grads, ref_grads))
                records.append(record)
                print(json.dumps(record), flush=True)
    speedups = {}
    for r in records:
        if r['impl'] != 'naive' and r.get('seconds'):
            naive = [n for n in records if n['impl'] == 'naive' and n['L'] == r['L']
                     and n['pass'] == r['pass'] and n.get('seconds')]
            if naive:
                speedups[f"{r['impl']} L={r['L']} {r['pass']}"] = round(
                    naive[0]['seconds'] / r['seconds'], 1)
    interleaved = {}
    for shape in shapes if args.interleaved_rounds > 0 else []:
        inputs = make_inputs(shape['L'], shape['D'], shape['N'], args.device)
        ratios = interleaved_ratios(impls['naive'], impls['portable'], inputs,
                                    args.interleaved_rounds)
        interleaved[f"portable L={shape['L']} fwd"] = dict(
            median=round(statistics.median(ratios), 2), min=round(min(ratios), 2),
            max=round(max(ratios), 2), rounds=len(ratios))
        print(json.dumps({f"interleaved portable L={shape['L']} fwd": interleaved[
            f"portable L={shape['L']} fwd"]}), flush=True)
    result = dict(records=records,
                  speedup_over_naive=speedups,
                  interleaved_fwd_speedup_over_naive=interleaved,
                  shapes=shapes,
                  device=args.device,
                  chunk_size=args.chunk_size,
                  repeats=args.repeats,
                  torch_threads=torch.get_num_threads(),
                  torch=torch.__version__,
                  machine=f'{platform.machine()} {platform.processor() or ""}'.strip(),
                  python=platform.python_version())
    with open(args.out, 'w', encoding='utf-8') as f:
        json.dump(result, f, indent=2)
        f.write('\n')
    print(json.dumps(speedups, indent=2))


if __name__ == '__main__':
    main()
