"""The checkpoint-loading policy: safe by default, full unpickling only on explicit opt-in."""
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint, load_checkpoint

import mmrs  # noqa: F401  (installs the policy)
from mmrs.utils.checkpoint import (ENV_FLAG, UnsafeCheckpointError, allow_unsafe_checkpoints,
                                   safe_torch_load)


class Payload:
    """An object whose unpickling has a visible side effect (stands in for malicious code)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.fixture
def mmengine_like_checkpoint(tmp_path: Path) -> Path:
    """What mmengine's CheckpointHook writes: state dict, meta, message hub, numpy scalars."""
    buffer = HistoryBuffer()
    buffer.update(0.5)
    checkpoint = {
        'meta': {'epoch': 0, 'iter': 10, 'seed': np.int64(3), 'cfg': 'model = dict()',
                 'dataset_meta': {'classes': ('unchanged', 'changed')}},
        'state_dict': OrderedDict(weight=torch.ones(2, 2)),
        'message_hub': {'log_scalars': {'train/loss': buffer},
                        'runtime_info': {'iter': 10, 'best': np.float64(0.7)}},
        'optimizer': {'state': {}, 'param_groups': [{'lr': 0.01, 'params': [0]}]},
    }
    path = tmp_path / 'iter_10.pth'
    torch.save(checkpoint, path)
    return path


@pytest.fixture
def malicious_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / 'payload_ran'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': Payload(str(marker))}, path)
    return path, marker


class TestSafeTorchLoad:

    def test_loads_mmengine_checkpoint_safely(self, mmengine_like_checkpoint: Path) -> None:
        loaded = safe_torch_load(str(mmengine_like_checkpoint))
        assert torch.equal(loaded['state_dict']['weight'], torch.ones(2, 2))
        assert loaded['message_hub']['log_scalars']['train/loss'].current() == 0.5
        assert loaded['meta']['seed'] == 3

    def test_refuses_arbitrary_objects(self, malicious_checkpoint, monkeypatch) -> None:
        path, marker = malicious_checkpoint
        monkeypatch.delenv(ENV_FLAG, raising=False)
        with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
            safe_torch_load(str(path))
        assert not marker.exists(), 'the payload was unpickled without opt-in'

    def test_mmengine_loaders_use_the_policy(self, malicious_checkpoint, monkeypatch) -> None:
        path, marker = malicious_checkpoint
        monkeypatch.delenv(ENV_FLAG, raising=False)
        with pytest.raises(UnsafeCheckpointError):
            _load_checkpoint(str(path), map_location='cpu')
        with pytest.raises(UnsafeCheckpointError):
            load_checkpoint(torch.nn.Linear(2, 2), str(path), map_location='cpu')
        assert not marker.exists()

    def test_explicit_opt_in_unpickles(self, malicious_checkpoint) -> None:
        path, marker = malicious_checkpoint
        with allow_unsafe_checkpoints():
            safe_torch_load(str(path))
        assert marker.exists()

    def test_env_opt_in(self, malicious_checkpoint, monkeypatch) -> None:
        path, marker = malicious_checkpoint
        monkeypatch.setenv(ENV_FLAG, '1')
        safe_torch_load(str(path))
        assert marker.exists()

    def test_weights_only_true_wins_over_opt_in(self, malicious_checkpoint) -> None:
        path, marker = malicious_checkpoint
        with allow_unsafe_checkpoints(), pytest.raises(UnsafeCheckpointError):
            safe_torch_load(str(path), weights_only=True)
        assert not marker.exists()
