"""The embedded default: train and evaluate a small change detector on synthetic GeoTIFFs.

    python tools/demo.py [--config configs/demo/...py] [--work-dir work_dirs/demo]

``--config`` takes a path, ``mmrs::<path>`` or a path relative to the shipped ``configs/``.

Steps, each through the user-facing tools so the demo exercises what users run:
1. ``tools/train.py`` on the demo config (the synthetic dataset generates its GeoTIFF pairs on
   first use, seeded, into ``data/synthetic_demo``);
2. ``tools/test.py`` on the test split with the last checkpoint, writing ``metrics.json`` and
   side-by-side pictures to ``<work-dir>/show``;
3. prints F1/IoU of the change class.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, REPO_ROOT)
DEFAULT_CONFIG = osp.join(REPO_ROOT, 'configs', 'demo', 'fc_siam_diff_synthetic_demo.py')


def run(step: str, command: list[str]) -> None:
    print(f'\n[demo] {step}: {" ".join(command)}', flush=True)
    subprocess.run(command, check=True, cwd=REPO_ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--work-dir', default=osp.join(REPO_ROOT, 'work_dirs', 'demo'))
    parser.add_argument('--min-f1', type=float, default=0.5,
                        help='exit non-zero when the test F1 is below this')
    args = parser.parse_args()
    from mmrs.utils.config_path import resolve_config
    try:
        # absolute: the steps run from the repository root, not from the user's folder
        config = osp.abspath(resolve_config(args.config))
    except FileNotFoundError as error:
        print(f'[demo] {error}', file=sys.stderr)
        return 2
    work_dir = osp.abspath(args.work_dir)

    start = time.time()
    python = sys.executable
    run('train', [python, 'tools/train.py', config, '--work-dir', work_dir])
    with open(osp.join(work_dir, 'last_checkpoint'), encoding='utf-8') as f:
        checkpoint = f.read().strip()
    metrics_file = osp.join(work_dir, 'metrics.json')
    run('test', [python, 'tools/test.py', config, checkpoint, '--work-dir', work_dir,
                 '--out', metrics_file, '--show-dir', osp.join(work_dir, 'show')])
    with open(metrics_file, encoding='utf-8') as f:
        metrics = json.load(f)
    f1, iou = metrics['f1'], metrics['iou']
    minutes = (time.time() - start) / 60
    print(f'\n[demo] synthetic test split: F1 = {f1:.4f}, IoU = {iou:.4f} '
          f'(precision {metrics["precision"]:.4f}, recall {metrics["recall"]:.4f}, '
          f'kappa {metrics["kappa"]:.4f}); {minutes:.1f} min in all')
    print(f'[demo] pictures: {osp.join(work_dir, "show")}  metrics: {metrics_file}')
    if f1 <= args.min_f1:
        print(f'[demo] F1 {f1:.4f} is not above {args.min_f1}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    os.environ.setdefault('PYTHONUNBUFFERED', '1')
    sys.exit(main())
