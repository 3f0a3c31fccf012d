"""Command-line and launch settings shared by tools/train.py and tools/test.py."""
import argparse
import os
import os.path as osp
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, DictAction

from .checkpoint import set_unsafe_checkpoints
from .config_path import resolve_config
from .setup_env import register_all_modules


def prepare_launch(cfg: Config) -> None:
    """Make a distributed launch work on this machine, GPU or not.

    Configs say ``nccl`` (the GPU default) and mmengine's ``pytorch`` launcher pins a CUDA
    device per process. Without CUDA (CI, laptops, the CPU DDP test) we start the gloo
    process group ourselves (mmengine then skips its own initialisation) and wrap the model
    with :class:`~mmrs.engine.model_wrappers.DeviceAwareDistributedDataParallel`, which
    does not pass CUDA ``device_ids``.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    if cfg.launcher == 'pytorch' and not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    if wrapper.get('type') == 'MMDistributedDataParallel':
        # mmengine looks wrappers up in its root registry, so the scope must be explicit.
        wrapper['type'] = 'mmrs.DeviceAwareDistributedDataParallel'
        wrapper.setdefault('find_unused_parameters', False)
        cfg.model_wrapper_cfg = wrapper


def enable_amp(cfg: Config) -> None:
    """Mixed precision for ``tools/train.py --amp``, on whatever device this machine has.

    CUDA: float16 autocast with dynamic loss scaling (mmengine's ``AmpOptimWrapper``).
    Otherwise: bfloat16 autocast on the CPU
    (:class:`~mmrs.engine.optim_wrappers.CPUAmpOptimWrapper`).
    """
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper not in ('OptimWrapper', 'AmpOptimWrapper', 'mmrs.CPUAmpOptimWrapper'):
        raise ValueError(f'--amp needs OptimWrapper, the config uses {wrapper}')
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    else:
        # mmengine builds optimizer wrappers from its root registry: the scope is explicit.
        cfg.optim_wrapper.type = 'mmrs.CPUAmpOptimWrapper'


@contextmanager
def distributed_session() -> Iterator[None]:
    """Shut the process group down cleanly when a tool finishes.

    Without this, a process can exit while gloo's background threads still run, and the C++
    runtime aborts it ("terminate called without an active exception") after training has
    finished, which torchrun then reports as a failed run. On success every rank waits for
    the others first; after an error the group is torn down without waiting (the other ranks
    may be gone).
    """
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        if torch_dist.is_available() and torch_dist.is_initialized():
            if succeeded:
                torch_dist.barrier()
            torch_dist.destroy_process_group()


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that tools/train.py and tools/test.py share."""
    parser.add_argument('--work-dir', help='where logs (and checkpoints) go')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. train_cfg.max_iters=100')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none')
    parser.add_argument('--allow-unsafe-checkpoint', action='store_true',
                        help='allow full unpickling of checkpoints (only for trusted files)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_run_config(args: argparse.Namespace) -> Config:
    """Read the config named on the command line and apply the shared options.

    Also exports ``LOCAL_RANK`` for launchers that pass ``--local-rank``, turns on the user's
    checkpoint opt-in, registers mmrs modules, and prepares a distributed launch.
    """
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    set_unsafe_checkpoints(args.allow_unsafe_checkpoint)
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(resolve_config(args.config))
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg
