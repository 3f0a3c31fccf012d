"""tools/train.py, tools/test.py and --resume, run as subprocesses the way users run them."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmrs.utils.checkpoint import safe_torch_load

from ._runner import REPO_ROOT, run_tool

pytestmark = pytest.mark.slow


class TestTrainThenTest:

    def test_train_writes_checkpoints_and_test_scores_them(self, tiny_config: Path,
                                                           tmp_path: Path) -> None:
        work_dir = tmp_path / 'work'
        run_tool('tools/train.py', str(tiny_config), '--work-dir', str(work_dir))
        assert (work_dir / 'iter_2.pth').is_file() and (work_dir / 'iter_4.pth').is_file()
        metrics_file, show_dir = tmp_path / 'out' / 'metrics.json', tmp_path / 'show'
        result = run_tool('tools/test.py', str(tiny_config), str(work_dir / 'iter_4.pth'),
                          '--work-dir', str(work_dir), '--out', str(metrics_file),
                          '--show-dir', str(show_dir))
        metrics = json.loads(metrics_file.read_text())
        for key in ('precision', 'recall', 'f1', 'iou', 'oa'):
            assert 0.0 <= metrics[key] <= 1.0, (key, metrics)
        assert -1.0 <= metrics['kappa'] <= 1.0
        printed = json.loads(result.stdout[result.stdout.rindex('\n{\n') + 1:])
        assert printed == metrics
        pictures = sorted(show_dir.rglob('*.png'))
        assert len(pictures) == 4, pictures

    def test_missing_checkpoint_is_a_clear_error(self, tiny_config: Path,
                                                 tmp_path: Path) -> None:
        result = run_tool('tools/test.py', str(tiny_config), str(tmp_path / 'nope.pth'),
                          check=False)
        assert result.returncode != 0
        assert 'nope.pth' in result.stderr


class TestResume:

    def test_kill_then_resume_continues(self, tiny_config: Path, tmp_path: Path) -> None:
        """Train, kill the process mid-run, `--resume`, and check training continues."""
        work_dir = tmp_path / 'work'
        long_run = [sys.executable, 'tools/train.py', str(tiny_config), '--work-dir',
                    str(work_dir), '--cfg-options', 'train_cfg.max_iters=1000',
                    'train_cfg.val_interval=1000']
        process = subprocess.Popen(long_run, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 300
            while time.time() < deadline and not (work_dir / 'last_checkpoint').is_file():
                assert process.poll() is None, 'training ended before it could be killed'
                time.sleep(0.5)
            assert (work_dir / 'last_checkpoint').is_file(), 'no checkpoint within 5 min'
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        killed_at = Path((work_dir / 'last_checkpoint').read_text().strip())
        start_iter = int(killed_at.stem.split('_')[1])
        assert start_iter < 1000
        target = start_iter + 2
        result = run_tool('tools/train.py', str(tiny_config), '--work-dir', str(work_dir),
                          '--resume', '--cfg-options', f'train_cfg.max_iters={target}',
                          f'train_cfg.val_interval={target}')
        log = result.stdout + result.stderr
        assert 'resumed' in log.lower(), log[-3000:]
        final = work_dir / f'iter_{target}.pth'
        assert final.is_file()
        state = safe_torch_load(str(final), map_location='cpu')
        assert state['meta']['iter'] == target

