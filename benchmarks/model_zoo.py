"""Model-zoo numbers for README.md: params, FLOPs at 256², CPU images/s, by config.

    python benchmarks/model_zoo.py [--configs CFG ...] [--iters 3] [--threads 2]
    python benchmarks/model_zoo.py --table [FILE]   # README table from the JSON

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

#: Pairs per timed step where one pair cannot train: UPerNet's pooling module normalises
#: 1x1 maps with BatchNorm, which needs more than one value per channel (images/s is per pair).
BATCH = {'configs/btc/btc_r18_upernet_256x256_40k_levircd.py': 2}


def run_json(args: list[str], out: str) -> dict:
    subprocess.run([sys.executable, *args, '--out', out], cwd=REPO_ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    with open(out, encoding='utf-8') as f:
        return json.load(f)


def markdown_table(result: dict) -> str:
    """The README rows: params, GFLOPs at 256² (scan share), CPU images/s, peak RSS."""
    lines = ['| config | params | GFLOPs @256² (selective scan) | CPU inference img/s | '
             'CPU train-step img/s | peak RSS train (MiB) |', '|---|---|---|---|---|---|']
    for row in result['rows']:
        flops, bench = row['flops'], row['benchmark']
        scan = flops.get('selective_scan_flops') or 0
        scan_txt = f' ({scan / 1e9:.3f})' if scan else ''
        train = bench.get('train', {})
        lines.append(
            f"| `{osp.basename(row['config'])}` | {flops['params']:,} | {flops['gflops']:.2f}"
            f"{scan_txt} | {bench['inference']['images_per_s']:.2f} | "
            f"{train.get('images_per_s', float('nan')):.2f} | "
            f"{train.get('peak_memory_mib', float('nan')):.0f} |")
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--table', nargs='?', const='', default=None, metavar='FILE',
                        help='print the README table of FILE (default: --out) and exit')
    parser.add_argument('--configs', nargs='+', default=CONFIGS)
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--out', default=osp.join(REPO_ROOT, 'benchmarks', 'results',
                                                  'model_zoo.json'))
    args = parser.parse_args()
    if args.table is not None:
        with open(args.table or args.out, encoding='utf-8') as f:
            print(markdown_table(json.load(f)))
        return
    # rows already in --out are kept (a rerun measures only what is missing); the file is
    # rewritten after every config, so a failure loses nothing measured before it
    rows = []
    if osp.isfile(args.out):
        with open(args.out, encoding='utf-8') as f:
            rows = [r for r in json.load(f).get('rows', []) if r['config'] in args.configs]
    done = {r['config'] for r in rows}
    with tempfile.TemporaryDirectory() as tmp:
        for config in args.configs:
            if config in done:
                continue
            flops = run_json(['tools/analysis/get_flops.py', config, '--shape', '256', '256'],
                             osp.join(tmp, 'flops.json'))
            speed = run_json(['tools/analysis/benchmark.py', config, '--shape', '256', '256',
                              '--batch', str(BATCH.get(config, 1)), '--iters', str(args.iters),
                              '--warmup', '1',
                              '--device', 'cpu', '--threads', str(args.threads)],
                             osp.join(tmp, 'speed.json'))
            rows.append(dict(config=config, flops=flops, benchmark=speed,
                             batch=BATCH.get(config, 1),
                             load_average_1min=round(os.getloadavg()[0], 2)))
            rows.sort(key=lambda r: args.configs.index(r['config']))
            with open(args.out, 'w', encoding='utf-8') as f:
                json.dump(dict(cpu_count=os.cpu_count(), threads=args.threads, rows=rows), f,
                          indent=2)
            print(config, 'done', flush=True)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
