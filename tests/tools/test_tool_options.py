"""Options of the tools, run the way users run them: ``--data-root``, config names
(``mmrs::`` / ``configs/``-relative), ``--pred-dir`` and the checkpoint/model fit check."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from ._runner import REPO_ROOT, TINY_CONFIG, run_tool

pytestmark = pytest.mark.slow


def model_checkpoint(config: Path, path: Path, corrupt: bool = False) -> tuple[Path, dict]:
    """Save the (randomly initialised) model of ``config``; ``corrupt`` drops one key, adds
    one and resizes one, as a checkpoint of another model would. Returns the keys touched."""
    from mmrs.registry import MODELS
    from mmrs.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    state = MODELS.build(Config.fromfile(str(config)).model).state_dict()
    touched = {}
    if corrupt:
        convs = [k for k, v in state.items() if v.ndim == 4]
        touched = dict(missing=convs[0], unexpected='head_of_another_model.weight',
                       resized=convs[1])
        del state[convs[0]]
        state['head_of_another_model.weight'] = torch.zeros(3)
        state[convs[1]] = torch.zeros(1, 1, 1, 1)
    torch.save({'state_dict': state, 'meta': {'iter': 0}}, path)
    return path, touched


class TestCheckpointMustFitTheModel:

    def test_mismatch_fails_listing_the_keys(self, tiny_config: Path, tmp_path: Path) -> None:
        checkpoint, keys = model_checkpoint(tiny_config, tmp_path / 'other.pth', corrupt=True)
        out = tmp_path / 'metrics.json'
        result = run_tool('tools/test.py', str(tiny_config), str(checkpoint), '--work-dir',
                          str(tmp_path / 'work'), '--out', str(out), check=False)
        assert result.returncode != 0, result.stdout[-2000:]
        error = result.stderr
        assert 'does not fit the model' in error and 'other.pth' in error, error[-3000:]
        assert f'missing in the checkpoint (1):\n    {keys["missing"]}' in error
        assert f'unexpected (not in the model) (1):\n    {keys["unexpected"]}' in error
        assert f'{keys["resized"]}: (1, 1, 1, 1) vs' in error
        assert '--allow-key-mismatch' in error
        assert not out.exists()

        # the explicit flag restores mmengine's behaviour: load what matches, warn, evaluate
        result = run_tool('tools/test.py', str(tiny_config), str(checkpoint), '--work-dir',
                          str(tmp_path / 'work'), '--out', str(out), '--allow-key-mismatch')
        assert 'do not match exactly' in result.stdout + result.stderr
        assert set(json.loads(out.read_text())) >= {'f1', 'iou'}


def test_test_tool_data_root_and_pred_dir(tiny_config: Path, tmp_path: Path) -> None:
    """``--data-root`` moves the test data (the synthetic set is generated there, not at the
    config's root); a fitting checkpoint passes the fit check; ``--pred-dir`` writes one
    prediction per test pair."""
    checkpoint, _ = model_checkpoint(tiny_config, tmp_path / 'model.pth')
    elsewhere, pred_dir = tmp_path / 'elsewhere', tmp_path / 'pred'
    run_tool('tools/test.py', str(tiny_config), str(checkpoint), '--work-dir',
             str(tmp_path / 'work'), '--data-root', str(elsewhere), '--pred-dir', str(pred_dir))
    assert not (tmp_path / 'data').exists()  # the config's own data_root
    test_pairs = sorted(p.stem for p in (elsewhere / 'test' / 'A').iterdir())
    assert len(test_pairs) == 4
    assert sorted(p.stem for p in pred_dir.iterdir()) == test_pairs


def test_train_tool_data_root_reaches_every_dataloader(tiny_config: Path,
                                                       tmp_path: Path) -> None:
    elsewhere, work_dir = tmp_path / 'elsewhere', tmp_path / 'work'
    run_tool('tools/train.py', str(tiny_config), '--work-dir', str(work_dir), '--data-root',
             str(elsewhere), '--cfg-options', 'train_cfg.max_iters=1', 'train_cfg.val_interval=1')
    assert (elsewhere / 'meta.json').is_file() and not (tmp_path / 'data').exists()
    dumped = Config.fromfile(str(work_dir / tiny_config.name))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert dumped[loader].dataset.data_root == str(elsewhere), loader


def test_browse_dataset_takes_shipped_config_names_and_data_root(
        levir_samples_root: Path, tmp_path: Path) -> None:
    """From a folder that is not the checkout: ``mmrs::`` resolves the shipped config and
    ``--data-root`` replaces its checkout-relative data_root."""
    out = tmp_path / 'figures'
    script = str(REPO_ROOT / 'tools' / 'analysis' / 'browse_dataset.py')
    result = run_tool(script, 'mmrs::btc/btc_r18_levircd_samples.py', '--data-root',
                      str(levir_samples_root), '--split', 'val', '--num', '1', '--not-show',
                      '--output-dir', str(out), cwd=tmp_path)
    assert '1 figures written' in result.stdout
    assert len(list(out.glob('*.png'))) == 1


def test_bad_config_name_is_a_clear_error(tmp_path: Path) -> None:
    result = run_tool('tools/train.py', 'mmrs::nope/missing.py', check=False)
    assert result.returncode != 0
    assert "config 'mmrs::nope/missing.py' not found; looked at" in result.stderr
    assert 'Traceback' not in result.stderr


class TestDemoConfigNames:
    """tools/demo.py resolves its ``--config`` before handing it to the other tools, which
    it runs from the checkout (a path relative to the user's folder would break there)."""

    @pytest.fixture
    def demo(self, monkeypatch, tmp_path: Path):
        spec = importlib.util.spec_from_file_location('demo_tool', REPO_ROOT / 'tools' / 'demo.py')
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        commands = []

        def record(step: str, command: list[str]) -> None:
            commands.append(command)
            raise KeyboardInterrupt  # stop before training

        monkeypatch.setattr(module, 'run', record)
        monkeypatch.chdir(tmp_path)
        return module, commands

    @pytest.mark.parametrize('name', ['mmrs::demo/fc_siam_diff_synthetic_demo.py',
                                      'configs/demo/fc_siam_diff_synthetic_demo.py',
                                      'demo/fc_siam_diff_synthetic_demo.py'])
    def test_shipped_names(self, demo, monkeypatch, name: str) -> None:
        module, commands = demo
        monkeypatch.setattr(sys, 'argv', ['demo.py', '--config', name])
        with pytest.raises(KeyboardInterrupt):
            module.main()
        config = Path(commands[0][2])
        assert config.is_absolute()
        assert config.resolve() == REPO_ROOT / 'configs/demo/fc_siam_diff_synthetic_demo.py'

    def test_path_relative_to_the_users_folder(self, demo, monkeypatch, tmp_path) -> None:
        module, commands = demo
        (tmp_path / 'mine.py').write_text(TINY_CONFIG)
        monkeypatch.setattr(sys, 'argv', ['demo.py', '--config', 'mine.py'])
        with pytest.raises(KeyboardInterrupt):
            module.main()
        assert Path(commands[0][2]) == tmp_path / 'mine.py'

    def test_unknown_name(self, demo, monkeypatch, capsys) -> None:
        module, commands = demo
        monkeypatch.setattr(sys, 'argv', ['demo.py', '--config', 'nope.py'])
        assert module.main() == 2
        assert 'looked at' in capsys.readouterr().err and not commands


def test_launcher_without_its_environment_is_a_clear_error(tiny_config: Path) -> None:
    result = run_tool('tools/train.py', str(tiny_config), '--launcher', 'slurm', check=False,
                      env=dict(SLURM_PROCID='', SLURM_NTASKS='', SLURM_LOCALID=''))
    assert result.returncode != 0
    assert 'tools/train.py: error: --launcher slurm needs the environment variable(s) ' \
        'SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID' in result.stderr, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr
