"""The example downstream project: its neck registers into mmrs and trains from its config."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

PROJECT = Path(__file__).resolve().parents[1]
REPO_ROOT = PROJECT.parents[1]
CONFIG = PROJECT / 'configs' / 'gated_diff_btc_r18_synthetic.py'


@pytest.fixture
def project_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(PROJECT))


def test_config_builds_model_with_project_neck(project_on_path: None) -> None:
    from mmengine.utils import import_modules_from_strings

    from mmrs.registry import MODELS
    from mmrs.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(str(CONFIG))
    import_modules_from_strings(**cfg.custom_imports)
    model = MODELS.build(cfg.model)
    assert type(model.neck).__name__ == 'GatedDiffNeck'
    inputs = torch.rand(2, 2, 3, 64, 64) * 255
    out = model(model.data_preprocessor({'inputs': list(inputs)})['inputs'], mode='tensor')
    assert out.shape[0] == 2 and torch.isfinite(out).all()


@pytest.mark.slow
def test_trains_through_tools_train(tmp_path: Path) -> None:
    work_dir = tmp_path / 'work'
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(PROJECT), os.environ.get('PYTHONPATH', '')]))
    options = [
        f'data_root={tmp_path / "data"}', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2', 'default_hooks.checkpoint.save_best=None',
        'default_hooks.logger.interval=1',
    ]
    for split in ('train', 'val', 'test'):
        options += [f'{split}_dataloader.dataset.data_root={tmp_path / "data"}',
                    f'{split}_dataloader.dataset.size=64',
                    f'{split}_dataloader.dataset.num_samples.train=4',
                    f'{split}_dataloader.dataset.num_samples.val=2',
                    f'{split}_dataloader.dataset.num_samples.test=2',
                    f'{split}_dataloader.batch_size=2', f'{split}_dataloader.num_workers=0',
                    f'{split}_dataloader.persistent_workers=False']
    result = subprocess.run(
        [sys.executable, 'tools/train.py', str(CONFIG), '--work-dir', str(work_dir),
         '--cfg-options', *options],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    from mmrs.utils import safe_torch_load
    state = safe_torch_load(str(work_dir / 'iter_2.pth'), map_location='cpu')
    assert any(key.startswith('neck.gates.') for key in state['state_dict'])
