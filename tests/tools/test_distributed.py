"""Two-process DDP training on the CPU (gloo) through tools/dist_train.sh (torchrun)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ._runner import REPO_ROOT, run_tool

pytestmark = pytest.mark.slow


#: Variables that steer a launch (tools/dist_*.sh, torchrun, mmengine). The launches get an
#: environment without them, so a value left by the CI shell or set earlier in the session
#: (MASTER_ADDR, PORT, RANK, ...) cannot redirect the rendezvous of this test.
LAUNCH_VARIABLES = ('MASTER_ADDR', 'MASTER_PORT', 'PORT', 'NNODES', 'NODE_RANK', 'RANK',
                    'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'GROUP_RANK')
#: Same numerics in every run compared below: one thread per process (torchrun's default for
#: its workers, and the single-process run too). With another thread count the convolutions
#: may sum in another order, and this barely trained model has pixels within 1e-7 of the
#: decision threshold, so exact metric equality would then depend on the machine's cores.
NUMERICS = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARIABLES
           and not k.startswith(('TORCHELASTIC_', 'PET_', 'SLURM_', 'OMPI_'))}
    return dict(env, PYTHON=sys.executable, PYTHONUNBUFFERED='1', **NUMERICS)


def _failure_report(log: str) -> str:
    """Every rank-0 line (the root cause) plus the tail of the log."""
    rank0 = [line for line in log.splitlines() if line.startswith('[rank0]')]
    return '\n'.join(rank0[-80:]) + '\n--- log tail ---\n' + log[-4000:]


def _launch(script: str, *args: str) -> str:
    """Run ``bash tools/<script>`` (torchrun, 2 CPU processes) and return its log.

    No port is chosen here: picking a free port, releasing it and letting torchrun bind it
    seconds later (after importing torch) is a race that another process on the machine can
    lose for us (EADDRINUSE when the rendezvous store starts). The scripts let torchrun bind
    an OS-assigned port itself (``--standalone``) when no PORT is given.
    """
    result = subprocess.run(['bash', f'tools/{script}', *args], cwd=REPO_ROOT,
                            env=_environment(), capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, _failure_report(log)
    return log


def test_two_process_ddp_training_then_testing(tiny_config: Path, tmp_path: Path) -> None:
    work_dir = tmp_path / 'ddp'
    log = _launch('dist_train.sh', str(tiny_config), '2', '--work-dir', str(work_dir))
    assert 'Distributed training: True' in log, log[-3000:]
    assert "'backend': 'gloo'" in log, log[-3000:]
    # mmengine reports the world size as "GPU number", CPU processes included
    assert re.search(r'GPU number: 2\b', log), log[-3000:]
    checkpoint = work_dir / 'iter_4.pth'
    assert checkpoint.is_file()

    # 2-process testing gathers every rank's results: the same numbers as one process.
    ddp_out, single_out = tmp_path / 'ddp_metrics.json', tmp_path / 'single_metrics.json'
    _launch('dist_test.sh', str(tiny_config), str(checkpoint), '2', '--work-dir',
            str(tmp_path / 'ddp_test'), '--out', str(ddp_out))
    run_tool('tools/test.py', str(tiny_config), str(checkpoint), '--work-dir',
             str(tmp_path / 'single_test'), '--out', str(single_out), env=NUMERICS)
    ddp_metrics = json.loads(ddp_out.read_text())
    single_metrics = json.loads(single_out.read_text())
    assert ddp_metrics.keys() == single_metrics.keys()
    for key, value in single_metrics.items():
        assert ddp_metrics[key] == pytest.approx(value, abs=1e-9), key


@pytest.mark.parametrize('script,args', [('dist_train.sh', ('cfg.py', '2')),
                                         ('dist_test.sh', ('cfg.py', 'ckpt.pth', '2'))])
class TestLaunchScripts:
    """What the scripts hand to torchrun (a stand-in interpreter prints its arguments)."""

    @staticmethod
    def torchrun_args(tmp_path: Path, script: str, args: tuple[str, ...],
                      **variables: str) -> list[str]:
        fake = tmp_path / 'python'
        fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
        fake.chmod(0o755)
        env = {k: v for k, v in _environment().items() if k != 'PYTHON'}
        result = subprocess.run(['bash', f'tools/{script}', *args], cwd=REPO_ROOT,
                                env=dict(env, PYTHON=str(fake), **variables),
                                capture_output=True, text=True, timeout=60, check=True)
        return result.stdout.splitlines()

    def test_one_machine_lets_torchrun_bind_the_port(self, tmp_path, script, args) -> None:
        argv = self.torchrun_args(tmp_path, script, args)
        assert '--standalone' in argv
        assert not [a for a in argv if a.startswith(('--master_port', '--master_addr'))]
        assert argv[argv.index('--launcher') + 1] == 'pytorch'

    def test_explicit_port_and_multi_node(self, tmp_path, script, args) -> None:
        argv = self.torchrun_args(tmp_path, script, args, PORT='29123')
        assert '--master_port=29123' in argv and '--standalone' not in argv
        argv = self.torchrun_args(tmp_path, script, args, NNODES='2', NODE_RANK='1',
                                  MASTER_ADDR='10.1.2.3')
        assert {'--nnodes=2', '--node_rank=1', '--master_addr=10.1.2.3',
                '--master_port=29500'} <= set(argv)
