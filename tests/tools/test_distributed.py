"""Two-process DDP training on the CPU (gloo) through tools/dist_train.sh (torchrun)."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ._runner import REPO_ROOT

pytestmark = pytest.mark.slow


def _free_port() -> int:
    """A port nothing listens on now, so parallel runs on one machine do not collide."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _failure_report(log: str) -> str:
    """Every rank-0 line (the root cause) plus the tail of the log."""
    rank0 = [line for line in log.splitlines() if line.startswith('[rank0]')]
    return '\n'.join(rank0[-80:]) + '\n--- log tail ---\n' + log[-4000:]


def test_two_process_ddp_training(tiny_config: Path, tmp_path: Path) -> None:
    work_dir = tmp_path / 'ddp'
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(_free_port()), OMP_NUM_THREADS='1',
               PYTHONUNBUFFERED='1')
    result = subprocess.run(
        ['bash', 'tools/dist_train.sh', str(tiny_config), '2', '--work-dir', str(work_dir)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, _failure_report(log)
    assert 'Distributed training: True' in log, log[-3000:]
    assert "'backend': 'gloo'" in log or 'backend=gloo' in log or "backend='gloo'" in log, \
        log[-3000:]
    assert (work_dir / 'iter_4.pth').is_file()
    # every rank reports itself in the torchrun-prefixed log lines
    assert '[rank1]' in log or 'rank: 1' in log or 'world_size: 2' in log.lower() \
        or 'GPU number: 2' in log, log[-3000:]
