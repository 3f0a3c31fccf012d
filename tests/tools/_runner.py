"""Helpers for end-to-end tests of the command-line tools."""
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

TINY_CONFIG = '''
_base_ = [
    '{root}/configs/_base_/models/fc_siam_diff.py',
    '{root}/configs/_base_/datasets/synthetic.py',
    '{root}/configs/_base_/default_runtime.py',
    '{root}/configs/_base_/schedules/schedule_40k.py',
]
synthetic = dict(data_root='{data_root}', size=64, num_samples=dict(train=8, val=4, test=4))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=synthetic)
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                      dataset=synthetic)
test_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                       dataset=synthetic)
model = dict(backbone=dict(channels=(8, 16, 32, 64)),
             decode_head=dict(in_channels=(8, 16, 32, 64, 64),
                              decoder_channels=(8, 16, 32, 64)))
optimizer = dict(_delete_=True, type='AdamW', lr=1e-3)
optim_wrapper = dict(optimizer=optimizer)
param_scheduler = []
train_cfg = dict(type='IterBasedTrainLoop', max_iters=4, val_interval=4)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=2, save_best=None, max_keep_ckpts=-1))
'''


def run_tool(*args: str, timeout: int = 600, env: dict | None = None,
             check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a tool as a user would (``python tools/x.py ...`` from the repo root, or from
    ``cwd``)."""
    full_env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
    result = subprocess.run([sys.executable, *args], cwd=cwd or REPO_ROOT, capture_output=True,
                            text=True, timeout=timeout, env=full_env)
    if check and result.returncode != 0:
        raise AssertionError(f'{args} failed ({result.returncode}):\n{result.stdout[-4000:]}'
                             f'\n{result.stderr[-4000:]}')
    return result

