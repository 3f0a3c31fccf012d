"""Command-line and launch settings shared by tools/train.py and tools/test.py."""
import argparse
import datetime
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, DictAction

from .checkpoint import set_unsafe_checkpoints
from .config_path import resolve_config
from .data_root import set_data_root
from .setup_env import register_all_modules

#: The launchers mmengine's ``init_dist`` knows (``--launcher``).
LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
#: torch.distributed's default port, also mmengine's for slurm and mpi.
DEFAULT_PORT = 29500


class LaunchError(RuntimeError):
    """The environment does not describe the distributed launch the user asked for."""


def _require(env: Mapping[str, str], launcher: str, names: tuple[str, ...],
             hint: str) -> list[int]:
    missing = [n for n in names if not env.get(n)]
    if missing:
        raise LaunchError(f'--launcher {launcher} needs the environment variable(s) '
                          f'{", ".join(missing)}, which are not set: {hint}')
    values = []
    for name in names:
        try:
            values.append(int(env[name]))
        except ValueError:
            raise LaunchError(f'--launcher {launcher}: {name}={env[name]!r} is not an '
                              'integer') from None
    return values


def first_slurm_host(nodelist: str) -> str:
    """The first host of a SLURM node list (``'node[03-05,9],gpu1'`` -> ``'node03'``).

    Used when ``scontrol`` (which mmengine calls for this) is not installed.

    Raises:
        LaunchError: ``nodelist`` is empty or malformed.
    """
    depth, first = 0, ''
    for char in nodelist.strip():  # the first top-level comma ends the first item
        depth += (char == '[') - (char == ']')
        if char == ',' and depth == 0:
            break
        first += char
    if not first or depth != 0 or first.count('[') != first.count(']'):
        raise LaunchError(f'cannot read the first host of SLURM_NODELIST={nodelist!r}; '
                          'set MASTER_ADDR')

    def lowest(match: re.Match) -> str:
        return re.split(r'[,-]', match.group(1))[0]

    host = re.sub(r'\[([^\]]*)\]', lowest, first)
    if not host or '[' in host or ']' in host:
        raise LaunchError(f'cannot read the first host of SLURM_NODELIST={nodelist!r}; '
                          'set MASTER_ADDR')
    return host


def _slurm_master_addr(nodelist: str) -> str:
    """mmengine's rule (``scontrol show hostname NODELIST | head -n1``), or our own parser
    of the node list where ``scontrol`` is not available."""
    if shutil.which('scontrol'):
        result = subprocess.run(['scontrol', 'show', 'hostnames', nodelist],
                                capture_output=True, text=True, check=False)
        hosts = result.stdout.split()
        if result.returncode == 0 and hosts:
            return hosts[0]
    return first_slurm_host(nodelist)


def distributed_env(launcher: str, env: Mapping[str, str] | None = None,
                    port: int | None = None) -> dict[str, str]:
    """The torch.distributed variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``MASTER_ADDR``, ``MASTER_PORT``) for a launcher, read from what it set.

    - ``pytorch`` (torchrun, ``tools/dist_*.sh``): its own variables, checked;
    - ``slurm`` (``srun``): ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``;
      ``MASTER_ADDR`` from the environment or the first host of ``SLURM_NODELIST``;
    - ``mpi`` (Open MPI's ``mpirun``): ``OMPI_COMM_WORLD_RANK``/``_SIZE``/``_LOCAL_RANK``;
      ``MASTER_ADDR`` must be set (MPI does not say which host is the master).

    ``MASTER_PORT`` is taken from the environment, then ``port``, then 29500 (mmengine's
    order for slurm and mpi).

    Raises:
        LaunchError: A variable the launcher should have set is missing, naming it and the
            usual way to start that launcher.
    """
    env = os.environ if env is None else env
    master_port = env.get('MASTER_PORT') or str(port or DEFAULT_PORT)
    if launcher == 'pytorch':
        rank, world, local = _require(
            env, launcher, ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'),
            'start the tool with torchrun, e.g. bash tools/dist_train.sh CONFIG NUM_PROCS')
        _require(env, launcher, ('MASTER_PORT',), 'torchrun sets it (--master_port)')
        if not env.get('MASTER_ADDR'):
            raise LaunchError('--launcher pytorch needs the environment variable MASTER_ADDR, '
                              'which is not set: torchrun sets it (--master_addr)')
        master_addr, master_port = env['MASTER_ADDR'], env['MASTER_PORT']
    elif launcher == 'slurm':
        rank, world, local = _require(
            env, launcher, ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_LOCALID'),
            'start the tool with srun (e.g. srun -n 4 python tools/train.py CONFIG '
            '--launcher slurm)')
        master_addr = env.get('MASTER_ADDR')
        if not master_addr:
            if not env.get('SLURM_NODELIST'):
                raise LaunchError('--launcher slurm needs MASTER_ADDR or SLURM_NODELIST to '
                                  'find the master host; srun sets SLURM_NODELIST')
            master_addr = _slurm_master_addr(env['SLURM_NODELIST'])
    elif launcher == 'mpi':
        rank, world, local = _require(
            env, launcher,
            ('OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_LOCAL_RANK'),
            'start the tool with Open MPI, e.g. mpirun -np 4 -x MASTER_ADDR=HOST python '
            'tools/train.py CONFIG --launcher mpi (other MPI implementations: use torchrun '
            'and --launcher pytorch)')
        master_addr = env.get('MASTER_ADDR')
        if not master_addr:
            raise LaunchError('--launcher mpi needs MASTER_ADDR (the host of rank 0), e.g. '
                              'mpirun -x MASTER_ADDR=$(hostname) ...')
    else:
        raise LaunchError(f'--launcher {launcher!r} is not one of {", ".join(LAUNCHERS[1:])}')
    if not 0 <= rank < world:
        raise LaunchError(f'--launcher {launcher}: rank {rank} is outside world size {world}')
    return dict(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(local),
                MASTER_ADDR=master_addr, MASTER_PORT=str(master_port))


def dist_timeout(dist_cfg: Mapping[str, Any]) -> datetime.timedelta | None:
    """``env_cfg.dist_cfg.timeout`` (seconds, mmengine's unit) as a ``timedelta``.

    Raises:
        TypeError: The timeout is not a positive number of seconds.
    """
    timeout = dist_cfg.get('timeout')
    if timeout is None:
        return None
    if isinstance(timeout, datetime.timedelta):
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise TypeError(f'env_cfg.dist_cfg.timeout must be a positive number of seconds '
                        f'(e.g. dist_cfg=dict(backend="gloo", timeout=1800)), got {timeout!r}')
    return datetime.timedelta(seconds=timeout)


def init_cpu_process_group(launcher: str, dist_cfg: MutableMapping[str, Any]) -> None:
    """Start a gloo process group for ``launcher`` on a machine without CUDA.

    mmengine's ``init_dist`` pins a CUDA device for every launcher, so mmrs starts the group
    itself (mmengine then skips its own initialisation). The variables of
    :func:`distributed_env` are exported, as mmengine's launchers do, because later code
    (``get_dist_info``, the DDP wrapper, data samplers) reads them. ``dist_cfg`` keeps
    mmengine's meaning: ``timeout`` in seconds, ``port`` (slurm/mpi) for the master port;
    other keys are passed on to ``init_process_group``.
    """
    if torch_dist.is_initialized():
        return
    options = {k: v for k, v in dist_cfg.items()
               if k not in ('backend', 'timeout', 'port', 'init_backend')}
    variables = distributed_env(launcher, port=dist_cfg.get('port'))
    os.environ.update(variables)
    timeout = dist_timeout(dist_cfg)
    if timeout is not None:
        options['timeout'] = timeout
    torch_dist.init_process_group(backend='gloo', init_method='env://',
                                  rank=int(variables['RANK']),
                                  world_size=int(variables['WORLD_SIZE']), **options)


def prepare_launch(cfg: Config) -> None:
    """Make a distributed launch work on this machine, GPU or not.

    Configs say ``nccl`` (the GPU default) and mmengine's launchers pin a CUDA device per
    process. Without CUDA (CI, laptops, the CPU DDP test) we start the gloo process group
    ourselves for every launcher mmengine offers (``pytorch``, ``slurm``, ``mpi``; see
    :func:`init_cpu_process_group`), honouring ``env_cfg.dist_cfg.timeout``, and wrap the
    model with :class:`~mmrs.engine.model_wrappers.DeviceAwareDistributedDataParallel`,
    which does not pass CUDA ``device_ids``. With CUDA, mmengine starts the group (and
    converts the timeout itself); the launcher's environment is only checked here.

    Raises:
        LaunchError: The launcher's environment is incomplete (names what is missing).
    """
    launcher = cfg.get('launcher', 'none')
    if launcher not in LAUNCHERS:
        raise LaunchError(f'--launcher {launcher!r} is not one of {", ".join(LAUNCHERS)}')
    if launcher == 'none':
        return
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    if torch.cuda.is_available():
        # mmengine starts the group; check its inputs first so that a missing variable is
        # named here rather than surfacing as a KeyError inside mmengine
        distributed_env(launcher, port=dist_cfg.get('port'))
        dist_timeout(dist_cfg)
        return
    dist_cfg['backend'] = 'gloo'
    init_cpu_process_group(launcher, dist_cfg)
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
    global _ran_distributed
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        if torch_dist.is_available() and torch_dist.is_initialized():
            _ran_distributed = True
            if succeeded:
                torch_dist.barrier()
            torch_dist.destroy_process_group()


_ran_distributed = False


def exit_after_distributed_run() -> None:
    """End a tool that ran a process group with ``os._exit(0)`` once its work is done.

    Even after :func:`distributed_session` has destroyed the group, a gloo or OpenMP worker
    thread that some library left joinable can make the C++ runtime abort the exiting
    process ("terminate called without an active exception", SIGABRT), rarely, under load;
    torchrun then reports a finished run as failed. Skipping the interpreter's teardown
    (after flushing the output streams and the logging handlers) avoids it. A no-op for
    single-process runs.
    """
    if not _ran_distributed:
        return
    import logging
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that tools/train.py and tools/test.py share."""
    parser.add_argument('--work-dir', help='where logs (and checkpoints) go')
    parser.add_argument('--data-root', metavar='DIR',
                        help='read every dataloader\'s dataset (train/val/test, also inside '
                        'dataset wrappers) from DIR instead of the config\'s data_root')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. train_cfg.max_iters=100')
    parser.add_argument('--launcher', choices=list(LAUNCHERS), default='none',
                        help='how the processes were started: none (one process), pytorch '
                        '(torchrun, tools/dist_*.sh), slurm (srun) or mpi (Open MPI mpirun)')
    parser.add_argument('--allow-unsafe-checkpoint', action='store_true',
                        help='allow full unpickling of checkpoints (only for trusted files)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_run_config(args: argparse.Namespace) -> Config:
    """Read the config named on the command line and apply the shared options.

    Also exports ``LOCAL_RANK`` for launchers that pass ``--local-rank``, turns on the user's
    checkpoint opt-in, and registers mmrs modules. ``--data-root`` is applied after
    ``--cfg-options``, so it wins over a ``data_root`` set there.
    """
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    set_unsafe_checkpoints(args.allow_unsafe_checkpoint)
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(resolve_config(args.config))
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if getattr(args, 'data_root', None):
        set_data_root(cfg, args.data_root)
    cfg.launcher = args.launcher
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg
