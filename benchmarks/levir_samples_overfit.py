"""Evidence that a model learns real data: fit the real LEVIR-CD sample pairs.

    python benchmarks/levir_samples_overfit.py [--config CFG] [--iters 300] [--data-root DIR]

Trains a ``*_levircd_samples.py`` config (default ``configs/btc/btc_r18_levircd_samples.py``)
through ``tools/train.py`` for one iteration (the starting point) and for ``--iters``
iterations, scores both with ``tools/test.py`` on the same 11 pairs, and writes
``benchmarks/results/levir_samples_overfit.json`` for the default config, or
``benchmarks/results/levir_samples_overfit_<config name>.json`` for another one (F1/IoU before
and after, wall time). The test suite runs a shorter version of this for BTC as a pass/fail check.
"""
import argparse
import glob
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


def train_and_score(config: str, iters: int, work_dir: str, options: list[str]) -> dict:
    tool('tools/train.py', config, '--work-dir', work_dir, '--cfg-options', *options,
         f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
         f'default_hooks.checkpoint.interval={iters}', 'default_hooks.checkpoint.save_best=None')
    losses = logged_losses(work_dir)
    out = osp.join(work_dir, 'metrics.json')
    tool('tools/test.py', config, osp.join(work_dir, f'iter_{iters}.pth'), '--work-dir',
         work_dir, '--out', out, '--cfg-options', *options)
    with open(out, encoding='utf-8') as f:
        metrics = json.load(f)
    metrics['losses'] = losses
    return metrics


def logged_losses(work_dir: str) -> list[list[float]]:
    """``[iteration, loss]`` pairs from the run's ``vis_data/scalars.json`` (LocalVisBackend)."""
    found = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    pairs = []
    for path in found[-1:]:
        with open(path, encoding='utf-8') as f:
            for line in f:
                record = json.loads(line)
                if 'loss' in record and 'iter' in record:
                    pairs.append([record['iter'], round(record['loss'], 4)])
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=CONFIG)
    parser.add_argument('--iters', type=int, default=300)
    parser.add_argument('--data-root',
                        default=osp.join(REPO_ROOT, '..', 'shared', 'data', 'levir_cd_samples'))
    args = parser.parse_args()
    root = osp.abspath(args.data_root)
    options = [f'data_root={root}'] + [f'{split}_dataloader.dataset.data_root={root}'
                                       for split in ('train', 'val', 'test')]
    with tempfile.TemporaryDirectory() as tmp:
        start = train_and_score(args.config, 1, osp.join(tmp, 'start'), options)
        began = time.time()
        trained = train_and_score(args.config, args.iters, osp.join(tmp, 'trained'), options)
        minutes = (time.time() - began) / 60
    keys = ('precision', 'recall', 'f1', 'iou', 'oa', 'kappa')
    result = dict(config=args.config, pairs=11, iterations=args.iters, cpu_count=os.cpu_count(),
                  train_and_score_minutes=round(minutes, 2),
                  after_1_iteration={k: round(start[k], 4) for k in keys},
                  after_training={k: round(trained[k], 4) for k in keys},
                  training_loss=trained['losses'])
    name = 'levir_samples_overfit'
    if osp.normpath(args.config) != osp.normpath(CONFIG):
        name += '_' + osp.splitext(osp.basename(args.config))[0]
    path = osp.join(REPO_ROOT, 'benchmarks', 'results', name + '.json')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == '__main__':
    main()
