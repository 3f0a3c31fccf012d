"""Train a model from a config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                          [--data-root DIR] [--cfg-options key=value ...]
                          [--launcher none|pytorch|slurm|mpi]

CONFIG is a path, ``mmrs::<path>`` or a path relative to the shipped ``configs/`` folder.
``--resume`` without a path continues from the latest checkpoint in the work dir.
``--data-root`` reads every dataloader's data from another folder.
For several processes use ``bash tools/dist_train.sh CONFIG NUM_PROCS`` (torchrun), ``srun
... --launcher slurm`` or ``mpirun ... --launcher mpi``; without CUDA they run on gloo.
"""
import argparse
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmrs.registry import RUNNERS  # noqa: E402

from mmrs.utils.checkpoint import UnsafeCheckpointError  # noqa: E402
from mmrs.utils.data_root import DataRootError  # noqa: E402
from mmrs.utils.launch import (LaunchError, add_runner_arguments,  # noqa: E402
                               distributed_session, enable_amp,
                               exit_after_distributed_run, load_run_config, prepare_launch)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train an mmrs model')
    parser.add_argument('config', help='config file (path, mmrs::path or shipped name)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help='resume from CKPT, or from the latest checkpoint in the work '
                        'dir when no path is given')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    add_runner_arguments(parser)
    return parser.parse_args()


def build_config(args: argparse.Namespace):
    """The config to train with: the file's, with the command-line options applied."""
    cfg = load_run_config(args)
    amp_config = cfg.get('optim_wrapper', {}).get('type') == 'AmpOptimWrapper'
    if args.amp or (amp_config and not torch.cuda.is_available()):
        # an AMP config on a machine without CUDA trains with bfloat16 autocast on the CPU
        # (mmengine's AmpOptimWrapper refuses to run there)
        enable_amp(cfg)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    prepare_launch(cfg)
    return cfg


def main() -> None:
    args = parse_args()
    try:
        with distributed_session():
            cfg = build_config(args)
            # runner_type='FlexibleRunner' (FSDP / DeepSpeed strategies) is built by name
            runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
            runner.train()
    except (UnsafeCheckpointError, LaunchError, DataRootError,
            FileNotFoundError) as error:
        # the user's input is wrong: say what, without a traceback through mmengine
        sys.exit(f'tools/train.py: error: {error}')
    exit_after_distributed_run()


if __name__ == '__main__':
    main()
