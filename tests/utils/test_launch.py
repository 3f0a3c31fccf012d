"""Distributed launch on the CPU: every launcher mmengine offers maps its environment to
rank/world size on gloo (or says what is missing), and ``dist_cfg.timeout`` is honoured."""
import datetime
import socket

import pytest
import torch
import torch.distributed as torch_dist
from mmengine.config import Config

from mmrs.utils import launch
from mmrs.utils.launch import (LaunchError, distributed_env, first_slurm_host,
                               prepare_launch)

#: every variable a launch reads or writes, so monkeypatch restores them after each test
VARIABLES = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT', 'SLURM_PROCID',
             'SLURM_NTASKS', 'SLURM_LOCALID', 'SLURM_NODELIST', 'OMPI_COMM_WORLD_RANK',
             'OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_LOCAL_RANK')

SLURM = dict(SLURM_PROCID='5', SLURM_NTASKS='8', SLURM_LOCALID='1',
             SLURM_NODELIST='cn[007-008,012],gpu1')
MPI = dict(OMPI_COMM_WORLD_RANK='3', OMPI_COMM_WORLD_SIZE='4', OMPI_COMM_WORLD_LOCAL_RANK='1',
           MASTER_ADDR='10.0.0.2')
TORCHRUN = dict(RANK='1', WORLD_SIZE='2', LOCAL_RANK='1', MASTER_ADDR='127.0.0.1',
                MASTER_PORT='29999')


@pytest.fixture
def clean_env(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(launch.shutil, 'which', lambda name: None)  # no scontrol here
    return monkeypatch


@pytest.fixture
def fake_init(clean_env):
    """Record init_process_group calls instead of starting a group."""
    calls = []
    clean_env.setattr(torch_dist, 'is_initialized', lambda: False)
    clean_env.setattr(torch_dist, 'init_process_group',
                      lambda **kwargs: calls.append(kwargs))
    return calls


def cpu_config(launcher: str, **dist_cfg) -> Config:
    return Config(dict(launcher=launcher, env_cfg=dict(dist_cfg=dict(backend='nccl',
                                                                     **dist_cfg))))


class TestEnvironmentMapping:

    def test_slurm(self) -> None:
        env = distributed_env('slurm', SLURM)
        assert env == dict(RANK='5', WORLD_SIZE='8', LOCAL_RANK='1', MASTER_ADDR='cn007',
                           MASTER_PORT='29500')

    def test_slurm_master_from_environment_and_port_from_config(self) -> None:
        env = distributed_env('slurm', dict(SLURM, MASTER_ADDR='head'), port=12345)
        assert env['MASTER_ADDR'] == 'head' and env['MASTER_PORT'] == '12345'
        env = distributed_env('slurm', dict(SLURM, MASTER_PORT='2222'), port=12345)
        assert env['MASTER_PORT'] == '2222'  # the environment wins, as in mmengine

    def test_mpi(self) -> None:
        env = distributed_env('mpi', MPI)
        assert env == dict(RANK='3', WORLD_SIZE='4', LOCAL_RANK='1', MASTER_ADDR='10.0.0.2',
                           MASTER_PORT='29500')

    def test_pytorch(self) -> None:
        assert distributed_env('pytorch', TORCHRUN) == TORCHRUN

    @pytest.mark.parametrize('nodelist,host', [
        ('node1', 'node1'), ('node1,node2', 'node1'), ('cn[007-008,012],gpu1', 'cn007'),
        ('rack[2-3]-n[10-11]', 'rack2-n10'), ('a[5,1-3]', 'a5')])
    def test_first_slurm_host(self, nodelist: str, host: str) -> None:
        assert first_slurm_host(nodelist) == host

    def test_scontrol_is_preferred(self, monkeypatch) -> None:
        monkeypatch.setattr(launch.shutil, 'which', lambda name: '/usr/bin/scontrol')
        seen = []

        class Done:
            returncode, stdout = 0, 'alpha\nbeta\n'

        def run(cmd, **kwargs):
            seen.append(cmd)
            return Done()

        monkeypatch.setattr(launch.subprocess, 'run', run)
        assert distributed_env('slurm', SLURM)['MASTER_ADDR'] == 'alpha'
        assert seen == [['scontrol', 'show', 'hostnames', SLURM['SLURM_NODELIST']]]


class TestClearErrors:

    @pytest.mark.parametrize('launcher,env,missing', [
        ('slurm', {}, 'SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID'),
        ('slurm', dict(SLURM_PROCID='0', SLURM_NTASKS='2'), 'SLURM_LOCALID'),
        ('mpi', {}, 'OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK'),
        ('pytorch', {}, 'RANK, WORLD_SIZE, LOCAL_RANK')])
    def test_missing_variables_are_named(self, launcher, env, missing) -> None:
        with pytest.raises(LaunchError, match=f'--launcher {launcher} needs the environment '
                           f'variable\\(s\\) {missing}, which are not set'):
            distributed_env(launcher, env)

    def test_mpi_needs_master_addr(self) -> None:
        env = {k: v for k, v in MPI.items() if k != 'MASTER_ADDR'}
        with pytest.raises(LaunchError, match='--launcher mpi needs MASTER_ADDR'):
            distributed_env('mpi', env)

    def test_slurm_without_nodelist_or_master(self) -> None:
        env = {k: v for k, v in SLURM.items() if k != 'SLURM_NODELIST'}
        with pytest.raises(LaunchError, match='MASTER_ADDR or SLURM_NODELIST'):
            distributed_env('slurm', env)

    def test_malformed_nodelist(self) -> None:
        with pytest.raises(LaunchError, match='set MASTER_ADDR'):
            first_slurm_host('cn[007-008')

    def test_rank_outside_world(self) -> None:
        with pytest.raises(LaunchError, match='rank 8 is outside world size 8'):
            distributed_env('slurm', dict(SLURM, SLURM_PROCID='8'))

    def test_not_an_integer(self) -> None:
        with pytest.raises(LaunchError, match="SLURM_NTASKS='eight' is not an integer"):
            distributed_env('slurm', dict(SLURM, SLURM_NTASKS='eight'))

    def test_bad_timeout(self, fake_init, clean_env) -> None:
        for name, value in TORCHRUN.items():
            clean_env.setenv(name, value)
        with pytest.raises(TypeError, match='positive number of seconds'):
            prepare_launch(cpu_config('pytorch', timeout='30 min'))
        assert fake_init == []


class TestPrepareLaunchOnCPU:

    @pytest.mark.parametrize('launcher,env,rank,world', [
        ('pytorch', TORCHRUN, 1, 2), ('slurm', SLURM, 5, 8), ('mpi', MPI, 3, 4)])
    def test_gloo_group_with_rank_world_and_timeout(self, fake_init, clean_env, launcher, env,
                                                    rank, world) -> None:
        for name, value in env.items():
            clean_env.setenv(name, value)
        cfg = cpu_config(launcher, timeout=90)
        prepare_launch(cfg)
        assert fake_init == [dict(backend='gloo', init_method='env://', rank=rank,
                                  world_size=world, timeout=datetime.timedelta(seconds=90))]
        assert cfg.env_cfg.dist_cfg.backend == 'gloo'
        assert cfg.model_wrapper_cfg.type == 'mmrs.DeviceAwareDistributedDataParallel'
        # exported like mmengine's launchers do: later code reads them
        assert int(launch.os.environ['RANK']) == rank
        assert int(launch.os.environ['WORLD_SIZE']) == world

    def test_no_timeout_keeps_torch_default(self, fake_init, clean_env) -> None:
        for name, value in SLURM.items():
            clean_env.setenv(name, value)
        prepare_launch(cpu_config('slurm', port=23456))
        assert 'timeout' not in fake_init[0] and 'port' not in fake_init[0]
        assert launch.os.environ['MASTER_PORT'] == '23456'

    def test_none_launcher_starts_nothing(self, fake_init) -> None:
        cfg = cpu_config('none', timeout=5)
        prepare_launch(cfg)
        assert fake_init == [] and cfg.env_cfg.dist_cfg.backend == 'nccl'

    def test_with_cuda_mmengine_starts_the_group_after_the_check(self, fake_init,
                                                                 clean_env) -> None:
        clean_env.setattr(torch.cuda, 'is_available', lambda: True)
        with pytest.raises(LaunchError, match='OMPI_COMM_WORLD_RANK'):
            prepare_launch(cpu_config('mpi'))
        for name, value in MPI.items():
            clean_env.setenv(name, value)
        cfg = cpu_config('mpi', timeout=60)
        prepare_launch(cfg)
        assert fake_init == [] and cfg.env_cfg.dist_cfg.backend == 'nccl'
        assert 'model_wrapper_cfg' not in cfg

    def test_missing_environment_fails_before_any_group(self, fake_init) -> None:
        with pytest.raises(LaunchError, match='SLURM_PROCID'):
            prepare_launch(cpu_config('slurm'))
        assert fake_init == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_real_single_process_slurm_group(clean_env) -> None:
    """An actual gloo group of one process from a SLURM environment, with the timeout."""
    for name, value in dict(SLURM, SLURM_PROCID='0', SLURM_NTASKS='1', SLURM_LOCALID='0',
                            SLURM_NODELIST='localhost', MASTER_ADDR='127.0.0.1',
                            MASTER_PORT=str(_free_port())).items():
        clean_env.setenv(name, value)
    assert not torch_dist.is_initialized()
    try:
        prepare_launch(cpu_config('slurm', timeout=42))
        assert torch_dist.get_world_size() == 1 and torch_dist.get_rank() == 0
        assert torch_dist.get_backend() == 'gloo'
        tensor = torch.ones(2)
        torch_dist.all_reduce(tensor)
        assert tensor.tolist() == [1.0, 1.0]
    finally:
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def test_exit_after_distributed_run_flushes_and_exits_zero() -> None:
    """After a distributed run the tools leave with os._exit(0): buffered output (stdout to
    a pipe is block-buffered) and logging must still reach the caller; single-process runs
    return normally."""
    import subprocess
    import sys
    code = ('import logging, sys\n'
            'from mmrs.utils import launch\n'
            'launch.exit_after_distributed_run()\n'  # not distributed: returns
            'print("metrics")\n'
            'logging.basicConfig(stream=sys.stderr); logging.getLogger("x").warning("logged")\n'
            'launch._ran_distributed = True\n'
            'launch.exit_after_distributed_run()\n'
            'print("never")\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'metrics' in proc.stdout and 'never' not in proc.stdout
    assert 'logged' in proc.stderr
