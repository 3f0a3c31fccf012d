"""Evaluate a checkpoint on a config's test split, print the metrics and write them as JSON.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out metrics.json]
                         [--show-dir DIR] [--cfg-options key=value ...]

``--show-dir`` writes one picture per test pair: date 1, date 2, prediction and ground truth
side by side, changed pixels coloured TP green / FP red / FN blue.
"""
import argparse
import json
import os
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, REPO_ROOT)

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.dist import is_main_process  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmrs.utils import register_all_modules  # noqa: E402
from mmrs.utils.checkpoint import set_unsafe_checkpoints  # noqa: E402
from mmrs.utils.config_path import resolve_config  # noqa: E402
from mmrs.utils.launch import prepare_launch  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (evaluate) an mmrs model')
    parser.add_argument('config', help='config file (path, mmrs::path or shipped name)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where logs go')
    parser.add_argument('--out', help='write the metrics to this JSON file')
    parser.add_argument('--show-dir', help='write side-by-side result pictures here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. test_dataloader.batch_size=4')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none')
    parser.add_argument('--allow-unsafe-checkpoint', action='store_true',
                        help='allow full unpickling of the checkpoint (trusted files only)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_config(args: argparse.Namespace) -> Config:
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist')
    cfg = Config.fromfile(resolve_config(args.config))
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.show_dir:
        hook = cfg.default_hooks.get('visualization')
        if hook is None:
            raise ValueError('--show-dir needs default_hooks.visualization in the config')
        hook.draw = True
        hook.test_out_dir = osp.abspath(args.show_dir)
    prepare_launch(cfg)
    return cfg


def main() -> None:
    args = parse_args()
    set_unsafe_checkpoints(args.allow_unsafe_checkpoint)
    register_all_modules(init_default_scope=False)
    cfg = build_config(args)
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    if not is_main_process():
        return
    serialisable = {key: float(value) if hasattr(value, '__float__') else value
                    for key, value in metrics.items()}
    print(json.dumps(serialisable, indent=2, sort_keys=True))
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        partial = args.out + '.partial'
        with open(partial, 'w', encoding='utf-8') as f:
            json.dump(serialisable, f, indent=2, sort_keys=True)
        os.replace(partial, args.out)


if __name__ == '__main__':
    main()
