"""Two-process DDP training on the CPU (gloo) through tools/dist_train.sh (torchrun)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ._runner import REPO_ROOT

pytestmark = pytest.mark.slow


def test_two_process_ddp_training(tiny_config: Path, tmp_path: Path) -> None:
    work_dir = tmp_path / 'ddp'
    env = dict(os.environ, PYTHON=sys.executable, PORT='29611', OMP_NUM_THREADS='1',
               PYTHONUNBUFFERED='1')
    result = subprocess.run(
        ['bash', 'tools/dist_train.sh', str(tiny_config), '2', '--work-dir', str(work_dir)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    assert 'Distributed training: True' in log, log[-3000:]
    assert "'backend': 'gloo'" in log or 'backend=gloo' in log or "backend='gloo'" in log, \
        log[-3000:]
    assert (work_dir / 'iter_4.pth').is_file()
    # every rank reports itself in the torchrun-prefixed log lines
    assert '[rank1]' in log or 'rank: 1' in log or 'world_size: 2' in log.lower() \
        or 'GPU number: 2' in log, log[-3000:]
