"""How fast the portable selective scan runs against the naive per-position loop.

    python benchmarks/selective_scan_speed.py [--lengths 1024 4096] [--repeats 3] [--device cpu]

Shapes are those of a MambaBCD-T / VMamba-T stage-1 SS2D call (``vssm_tiny_224_0229flex``: embed dim
96, ``ssm_ratio`` 2.0, ``ssm_d_state`` 1, four directions): ``KD = 4 * 192 = 768`` channels in four
B/C groups, ``N = 1``; ``L = 4096`` is stage 1 of a 256x256 input (64x64 tokens). "naive" is
:func:`mmrs.models.layers.selective_scan_reference`, the sequential loop the official code falls
back to without its CUDA kernel; "portable" is ``selective_scan(backend='torch')``; on a GPU with a
kernel installed a row per kernel is added. Writes ``benchmarks/results/selective_scan_speed.json``:
one record per ``impl``/``L``/``pass`` with the median seconds over ``--repeats`` timed runs (after
one warm-up), plus the max abs difference to the naive output.
"""
import argparse
import json
import os.path as osp
import platform
import statistics
import time
from collections.abc import Callable

import torch

from mmrs.models.layers import selective_scan, selective_scan_reference
from mmrs.models.layers.selective_scan import available_cuda_backends

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def make_inputs(length: int, kd: int, n: int, groups: int, device: str) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    tensors = [
        torch.randn(1, kd, length, generator=g),  # u
        0.5 * torch.randn(1, kd, length, generator=g),  # delta
        -torch.exp(torch.randn(kd, n, generator=g)),  # A
        torch.randn(1, groups, n, length, generator=g),  # B
        torch.randn(1, groups, n, length, generator=g),  # C
        torch.randn(kd, generator=g),  # D
        0.3 * torch.randn(kd, generator=g),  # delta_bias
    ]
    return [t.to(device) for t in tensors]


def time_pass(fn: Callable[..., torch.Tensor], inputs: list[torch.Tensor], backward: bool,
              repeats: int) -> float:
    """Median seconds of one forward (and backward) pass."""
    leaves = [t.detach().requires_grad_(backward) for t in inputs]

    def run() -> None:
        y = fn(*leaves)
        if backward:
            y.sum().backward()
        if y.is_cuda:
            torch.cuda.synchronize()

    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--lengths', type=int, nargs='+', default=[1024, 4096])
    parser.add_argument('--channels', type=int, default=768, help='KD = 4 directions x d_inner')
    parser.add_argument('--d-state', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--chunk-size', type=int, default=64)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None,
                        help="torch CPU threads (default: torch's choice); 1 is steadier on a "
                        'shared machine')
    parser.add_argument('--skip-naive-backward', action='store_true',
                        help='time the naive loop forward only (its backward is the slowest part)')
    parser.add_argument('--out', default=osp.join(REPO_ROOT, 'benchmarks', 'results',
                                                  'selective_scan_speed.json'))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    impls: dict[str, Callable[..., torch.Tensor]] = {
        'naive': lambda *t: selective_scan_reference(*t, delta_softplus=True),
        'portable': lambda *t: selective_scan(*t, delta_softplus=True, backend='torch',
                                              chunk_size=args.chunk_size),
    }
    if args.device.startswith('cuda'):
        for name in available_cuda_backends()[:1]:
            impls[name] = lambda *t: selective_scan(*t, delta_softplus=True, backend='cuda')

    records = []
    for length in args.lengths:
        inputs = make_inputs(length, args.channels, args.d_state, 4, args.device)
        with torch.no_grad():
            naive_out = impls['naive'](*inputs)
        for impl, fn in impls.items():
            with torch.no_grad():
                max_abs_diff = (fn(*inputs) - naive_out).abs().max().item()
            rel_diff = max_abs_diff / naive_out.abs().max().item()  # relative to the output scale
            for backward in (False, True):
                if impl == 'naive' and backward and args.skip_naive_backward:
                    continue
                seconds = time_pass(fn, inputs, backward, args.repeats)
                records.append({'impl': impl, 'L': length, 'D': args.channels, 'N': args.d_state,
                                'pass': 'fwd+bwd' if backward else 'fwd',
                                'seconds': round(seconds, 5),
                                'max_abs_diff_to_naive': max_abs_diff,
                                'max_rel_diff_to_naive': rel_diff})
                print(json.dumps(records[-1]), flush=True)
    speedups = {}
    for r in records:
        if r['impl'] == 'portable':
            naive = [
                n for n in records
                if n['impl'] == 'naive' and n['L'] == r['L'] and n['pass'] == r['pass']
            ]
            if naive:
                speedups[f"L={r['L']} {r['pass']}"] = round(naive[0]['seconds'] / r['seconds'], 1)
    result = dict(records=records,
                  portable_speedup_over_naive=speedups,
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
