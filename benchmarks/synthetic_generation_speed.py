"""How fast the synthetic scene generator draws bitemporal pairs (the demo's data cost).

    python benchmarks/synthetic_generation_speed.py [--size 128] [--pairs 20] [--repeats 5]

Times :func:`mmrs.datasets.synthetic.generate_pair` in-process (after one warm-up pair) and
writes ``benchmarks/results/synthetic_generation_speed.json`` with the median and spread
of milliseconds per pair over ``--repeats`` rounds. Timing lives here rather than in the
test suite, where shared CPUs make wall-clock assertions flaky.
"""
import argparse
import json
import os.path as osp
import platform
import statistics
import time

from mmrs.datasets.synthetic import generate_pair

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def time_round(size: int, pairs: int, round_index: int) -> float:
    """Milliseconds per pair for ``pairs`` freshly seeded pairs."""
    start = time.perf_counter()
    for i in range(pairs):
        generate_pair([round_index, i], size)
    return (time.perf_counter() - start) / pairs * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=128, help='tile side in pixels')
    parser.add_argument('--pairs', type=int, default=20, help='pairs per timed round')
    parser.add_argument('--repeats', type=int, default=5, help='timed rounds')
    parser.add_argument('--out', default=osp.join(REPO_ROOT, 'benchmarks', 'results',
                                                  'synthetic_generation_speed.json'))
    args = parser.parse_args()
    generate_pair(0, args.size)  # warm-up: imports, allocator
    rounds = [time_round(args.size, args.pairs, r + 1) for r in range(args.repeats)]
    result = dict(size=args.size, pairs_per_round=args.pairs, repeats=args.repeats,
                  ms_per_pair_median=round(statistics.median(rounds), 2),
                  ms_per_pair_min=round(min(rounds), 2), ms_per_pair_max=round(max(rounds), 2),
                  machine=f'{platform.machine()} {platform.processor() or ""}'.strip(),
                  python=platform.python_version())
    with open(args.out, 'w', encoding='utf-8') as f:
        json.dump(result, f, indent=2)
        f.write('\n')
    print(json.dumps(result, indent=2))


if __name__ == '__main__':
    main()
