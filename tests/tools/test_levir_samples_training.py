"""Real data through the user-facing tools: the BTC-style ResNet-18 config on the real LEVIR-CD
sample pairs overfits them (train F1 rises far above its starting value)."""
import json
from pathlib import Path

import pytest

from ._runner import run_tool

pytestmark = pytest.mark.slow

CONFIG = 'configs/btc/btc_r18_levircd_samples.py'


def score(checkpoint: Path, work_dir: Path, data: list[str]) -> dict:
    out = work_dir / f'{checkpoint.stem}_metrics.json'
    run_tool('tools/test.py', CONFIG, str(checkpoint), '--work-dir', str(work_dir), '--out',
             str(out), *data)
    return json.loads(out.read_text())


def test_btc_r18_overfits_real_levir_pairs(levir_samples_root: Path, tmp_path: Path) -> None:
    data = ['--data-root', str(levir_samples_root)]
    start_dir, trained_dir = tmp_path / 'start', tmp_path / 'trained'
    run_tool('tools/train.py', CONFIG, '--work-dir', str(start_dir), *data, '--cfg-options',
             'train_cfg.max_iters=1', 'train_cfg.val_interval=1000',
             'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.save_best=None')
    start = score(start_dir / 'iter_1.pth', start_dir, data)

    iters = 120
    run_tool('tools/train.py', CONFIG, '--work-dir', str(trained_dir), *data, '--cfg-options',
             f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
             f'default_hooks.checkpoint.interval={iters}',
             'default_hooks.checkpoint.save_best=None', timeout=1200)
    trained = score(trained_dir / f'iter_{iters}.pth', trained_dir, data)
    assert trained['f1'] > start['f1'] + 0.3, (start, trained)
    assert trained['f1'] > 0.5, trained
