"""Environment, checkpoint-loading policy and typing helpers."""
from .checkpoint import (UnsafeCheckpointError, allow_unsafe_checkpoints,
                         install_checkpoint_policy, safe_torch_load)
from .collect_env import collect_env
from .setup_env import register_all_modules
from .version_check import check_versions

__all__ = [
    'UnsafeCheckpointError', 'allow_unsafe_checkpoints', 'install_checkpoint_policy',
    'safe_torch_load', 'collect_env', 'register_all_modules', 'check_versions'
]
