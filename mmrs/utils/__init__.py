"""Environment, checkpoint-loading policy, launch and typing helpers.

The names below are loaded on first use (PEP 562): ``import mmrs`` must be able to run
:func:`~mmrs.utils.version_check.check_versions` before torch or mmengine are imported, so
that a missing or broken package is reported with its fix rather than as a bare
``ModuleNotFoundError`` from deep inside this package.
"""
import importlib
from typing import Any

_EXPORTS = {
    'UnsafeCheckpointError': 'checkpoint',
    'CheckpointKeyMismatchError': 'checkpoint',
    'allow_unsafe_checkpoints': 'checkpoint',
    'install_checkpoint_policy': 'checkpoint',
    'safe_torch_load': 'checkpoint',
    'safe_load_url': 'checkpoint',
    'collect_env': 'collect_env',
    'resolve_config': 'config_path',
    'register_all_modules': 'setup_env',
    'check_versions': 'version_check',
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(f'.{_EXPORTS[name]}', __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
