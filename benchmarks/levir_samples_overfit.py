"""Evidence that the BTC-style ResNet-18 learns real data: fit the real LEVIR-CD sample pairs.

    python benchmarks/levir_samples_overfit.py [--iters 300] [--data-root DIR]

Trains ``configs/btc/btc_r18_levircd_samples.py`` through ``tools/train.py`` for one
iteration (the starting point) and for ``--iters`` iterations, scores both with
``tools/test.py`` on the same 11 pairs, and writes
``benchmarks/results/levir_samples_overfit.json`` (F1/IoU before and after, wall time).
The test suite runs a shorter version of this as a pass/fail check.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = 'configs/btc/btc_r18_levircd_samples.py'


def tool(*args: str) -> None:
    subprocess.run([sys.executable, *args], cwd=REPO_ROOT, check=True,
                   stdout=subprocess.DEVNULL)


def train_and_score(iters: int, work_dir: str, options: list[str]) -> dict:
    tool('tools/train.py', CONFIG, '--work-dir', work_dir, '--cfg-options', *options,
         f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
         f'default_hooks.checkpoint.interval={iters}', 'default_hooks.checkpoint.save_best=None')
    out = osp.join(work_dir, 'metrics.json')
    tool('tools/test.py', CONFIG, osp.join(work_dir, f'iter_{iters}.pth'), '--work-dir',
         work_dir, '--out', out, '--cfg-options', *options)
    with open(out, encoding='utf-8') as f:
        return json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=int, default=300)
    parser.add_argument('--data-root',
                        default=osp.join(REPO_ROOT, '..', 'shared', 'data', 'levir_cd_samples'))
    args = parser.parse_args()
    root = osp.abspath(args.data_root)
    options = [f'data_root={root}'] + [f'{split}_dataloader.dataset.data_root={root}'
                                       for split in ('train', 'val', 'test')]
    with tempfile.TemporaryDirectory() as tmp:
        start = train_and_score(1, osp.join(tmp, 'start'), options)
        began = time.time()
        trained = train_and_score(args.iters, osp.join(tmp, 'trained'), options)
        minutes = (time.time() - began) / 60
    keys = ('precision', 'recall', 'f1', 'iou', 'oa', 'kappa')
    result = dict(config=CONFIG, pairs=11, iterations=args.iters, cpu_count=os.cpu_count(),
                  train_and_score_minutes=round(minutes, 2),
                  after_1_iteration={k: round(start[k], 4) for k in keys},
                  after_training={k: round(trained[k], 4) for k in keys})
    path = osp.join(REPO_ROOT, 'benchmarks', 'results', 'levir_samples_overfit.json')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == '__main__':
    main()
