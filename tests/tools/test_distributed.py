"""Two-process DDP training on the CPU (gloo) through tools/dist_train.sh (torchrun)."""
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ._runner import REPO_ROOT, run_tool

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


def _launch(script: str, *args: str) -> str:
    """Run ``bash tools/<script>`` (torchrun, 2 CPU processes) and return its log."""
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(_free_port()), OMP_NUM_THREADS='1',
               PYTHONUNBUFFERED='1')
    result = subprocess.run(['bash', f'tools/{script}', *args], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
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
             str(tmp_path / 'single_test'), '--out', str(single_out))
    ddp_metrics, single_metrics = json.loads(ddp_out.read_text()), json.loads(single_out.read_text())
    assert ddp_metrics.keys() == single_metrics.keys()
    for key, value in single_metrics.items():
        assert ddp_metrics[key] == pytest.approx(value, abs=1e-9), key
