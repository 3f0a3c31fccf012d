"""Rotated RetinaNet learns on the DOTA sample scenes, on the CPU, through tools/train.py.

    nice -n 5 python benchmarks/dota_samples_fit.py [--iters 100] [--work-dir DIR]
        [--without-mmrotate-patches] [--out FILE]

Steps (all in a temporary folder unless ``--work-dir``):

1. split ``dota_samples`` P0706 and P1888 (``../shared/data``) into 512x512 patches, 100 px
   overlap, with ``tools/data/dota/split.py``; add mmrotate's two sample patches
   (``dota_samples_mmrotate``; P0004's second label file has no image and is left out)
   unless ``--without-mmrotate-patches`` (their labels lie outside the crops, see the
   config README);
2. ``tools/train.py`` with the learning rate 0 for one iteration: its end-of-training
   validation is the mAP *before* training (random weights);
3. ``tools/train.py`` for ``--iters`` iterations (the config's AdamW, warm-up, cosine decay):
   the training loss per iteration and the mAP *after* on the same patches;
4. ``tools/test.py`` on the final checkpoint: must give the same mAP (checks the test tool).

mAP is the devkit-exact DOTA Task1 mAP (VOC07, IoU > 0.5, difficult ignored, mean over the 15
classes) of the config's ``DOTADevkitMetric``. Writes
``benchmarks/results/dota_samples_fit.json``: loss at the start/end (mean of the first/last 10
iterations), mAP before/after, per-class AP after, seconds per iteration.
"""
import argparse
import glob
import json
import os
import os.path as osp
import platform
import subprocess
import statistics
import sys
import tempfile

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = os.environ.get('MMRS_SHARED_DATA', osp.join(REPO_ROOT, '..', 'shared', 'data'))
CONFIG = 'configs/rotated_retinanet/rotated_retinanet_r18_fpn_cpu_dota_samples.py'
MMROTATE_PATCHES = (('main/tests/data', 'P0004__1__0___0'),
                    ('dev-1.x/tests/data/dota', 'P2805__1024__0___0'))


def run(cmd: list[str]) -> str:
    """Run a tool from the repository root; its output, or an error with the output's tail."""
    proc = subprocess.run([sys.executable, *cmd], cwd=REPO_ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)} failed ({proc.returncode}):\n'
                           f'{(proc.stdout + proc.stderr)[-3000:]}')
    return proc.stdout


def prepare_data(root: str, mmrotate_patches: bool = True) -> int:
    """Patches of the sample scenes (plus mmrotate's sample patches); their number."""
    src = osp.join(SHARED, 'dota_samples', 'example')
    if not osp.isdir(src):
        raise FileNotFoundError(f'DOTA samples not found: {src!r} (set MMRS_SHARED_DATA)')
    run(['tools/data/dota/split.py', '--img-dir', osp.join(src, 'images'), '--ann-dir',
         osp.join(src, 'labelTxt'), '--out-dir', root, '--subsize', '512', '--gap', '100'])
    for folder, name in (MMROTATE_PATCHES if mmrotate_patches else ()):
        base = osp.join(SHARED, 'dota_samples_mmrotate', folder)
        for sub, ext in (('images', '.png'), ('labelTxt', '.txt')):
            dst = osp.join(root, sub, name + ext)
            if not osp.exists(dst):
                os.symlink(osp.abspath(osp.join(base, sub, name + ext)), dst)
    return len(os.listdir(osp.join(root, 'images')))


def scalars(work_dir: str) -> list[dict]:
    """The runner's logged scalars (``vis_data/scalars.json``, one JSON object a line)."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(f'no vis_data/scalars.json under {work_dir!r}')
    with open(files[-1], encoding='utf-8') as f:
        return [json.loads(line) for line in f if line.strip()]


def train(data: str, work_dir: str, iters: int, extra: list[str]) -> list[dict]:
    """Train (unless ``work_dir`` already holds this run's final checkpoint); its scalars."""
    if osp.isfile(osp.join(work_dir, f'iter_{iters}.pth')):
        return scalars(work_dir)
    run(['tools/train.py', CONFIG, '--data-root', data, '--work-dir', work_dir,
         '--cfg-options', f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
         f'default_hooks.checkpoint.interval={iters}', 'default_hooks.logger.interval=1',
         'log_processor.window_size=1',
         *extra])
    return scalars(work_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=int, default=100)
    parser.add_argument('--work-dir', default=None, help='keep the runs here (default: tmp)')
    parser.add_argument('--out', default=osp.join(REPO_ROOT, 'benchmarks', 'results',
                                                  'dota_samples_fit.json'))
    parser.add_argument('--without-mmrotate-patches', action='store_true',
                        help="leave out mmrotate's two sample crops (labels outside them)")
    args = parser.parse_args()
    work = args.work_dir or tempfile.mkdtemp(prefix='mmrs_dota_fit_')
    data = osp.join(work, 'data')
    num_images = prepare_data(data, not args.without_mmrotate_patches)

    before = train(data, osp.join(work, 'before'), 1, ['optim_wrapper.optimizer.lr=0.0'])
    map_before = [r for r in before if 'dota/mAP' in r][-1]['dota/mAP']

    log = train(data, osp.join(work, 'fit'), args.iters,
                [f'param_scheduler.1.end={args.iters}'])
    steps = [r for r in log if 'loss' in r]
    after = [r for r in log if 'dota/mAP' in r][-1]

    ckpt = osp.join(work, 'fit', f'iter_{args.iters}.pth')
    metrics = osp.join(work, 'test', 'metrics.json')
    run(['tools/test.py', CONFIG, ckpt, '--data-root', data, '--work-dir',
         osp.join(work, 'test'), '--out', metrics])
    with open(metrics, encoding='utf-8') as f:
        tested = json.load(f)

    def summary(key: str, part: slice) -> dict:
        values = [r[key] for r in steps[part]]
        return dict(mean=round(statistics.mean(values), 4),
                    median=round(statistics.median(values), 4))

    result = dict(
        config=CONFIG, images=num_images, iterations=args.iters, batch_size=2,
        mmrotate_patches=not args.without_mmrotate_patches,
        # first / last 10 iterations; the mean carries the spikes of mmrotate's two crops,
        # whose labels reach outside the image (see the MANIFEST), the median does not
        loss_start=summary('loss', slice(0, 10)), loss_end=summary('loss', slice(-10, None)),
        loss_cls_start=summary('loss_cls', slice(0, 10)),
        loss_cls_end=summary('loss_cls', slice(-10, None)),
        loss_bbox_start=summary('loss_bbox', slice(0, 10)),
        loss_bbox_end=summary('loss_bbox', slice(-10, None)),
        loss_per_iter=[round(r['loss'], 4) for r in steps],
        map_before=map_before, map_after=after['dota/mAP'],
        map_after_test_tool=tested.get('dota/mAP'),
        ap_after={k.split('_', 1)[1]: v for k, v in after.items()
                  if k.startswith('dota/AP50_') and v > 0},
        seconds_per_iter=round(statistics.mean(r['time'] for r in steps if 'time' in r), 2),
        machine=dict(python=platform.python_version(), cpus=os.cpu_count(),
                     note='CPU shared with other jobs; times are indicative only'))
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out, 'w', encoding='utf-8') as f:
        json.dump(result, f, indent=2)
    print(json.dumps({k: v for k, v in result.items() if k != 'loss_per_iter'}, indent=2))


if __name__ == '__main__':
    main()
