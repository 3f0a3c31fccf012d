"""Model-zoo numbers for README.md: params, FLOPs at 256², CPU images/s, by config.

    python benchmarks/model_zoo.py [--configs CFG ...] [--iters 3] [--threads 2]

Runs ``tools/analysis/get_flops.py`` (selective scans counted) and
``tools/analysis/benchmark.py`` (CPU inference and train-step images/s of one 256×256 pair,
peak RSS) on each config and writes ``benchmarks/results/model_zoo.json``. Image = one
bitemporal pair. Timings depend on the machine (recorded with ``cpu_count``) and on what else
runs on it: compare rows of one file, not across files.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: One config per model of the zoo (the dataset does not change the numbers).
CONFIGS = [
    'configs/changemamba/mambabcd_tiny_256x256_20k_levircd.py',
    'configs/changemamba/mambabcd_small_256x256_20k_levircd.py',
    'configs/changemamba/mambabcd_base_256x256_20k_levircd.py',
    'configs/changemamba/mambascd_tiny_256x256_50k_second.py',
    'configs/changemamba/mambascd_small_256x256_50k_second.py',
    'configs/changemamba/mambascd_base_256x256_50k_second.py',
    'configs/changemamba/mambabda_tiny_256x256_50k_xbd.py',
    'configs/changemamba/mambabda_small_256x256_50k_xbd.py',
    'configs/changemamba/mambabda_base_256x256_50k_xbd.py',
    'configs/changevit/changevit_tiny_256x256_80k_levircd.py',
    'configs/changevit/changevit_small_256x256_80k_levircd.py',
    'configs/btc/btc_r18_upernet_256x256_40k_levircd.py',
]


def run_json(args: list[str], out: str) -> dict:
    subprocess.run([sys.executable, *args, '--out', out], cwd=REPO_ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    with open(out, encoding='utf-8') as f:
        return json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--configs', nargs='+', default=CONFIGS)
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--out', default=osp.join(REPO_ROOT, 'benchmarks', 'results',
                                                  'model_zoo.json'))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for config in args.configs:
            flops = run_json(['tools/analysis/get_flops.py', config, '--shape', '256', '256'],
                             osp.join(tmp, 'flops.json'))
            speed = run_json(['tools/analysis/benchmark.py', config, '--shape', '256', '256',
                              '--batch', '1', '--iters', str(args.iters), '--warmup', '1',
                              '--device', 'cpu', '--threads', str(args.threads)],
                             osp.join(tmp, 'speed.json'))
            rows.append(dict(config=config, flops=flops, benchmark=speed))
            print(config, 'done', flush=True)
    with open(args.out, 'w', encoding='utf-8') as f:
        json.dump(dict(cpu_count=os.cpu_count(), threads=args.threads, rows=rows), f, indent=2)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
