"""Checkpoint loading that never unpickles arbitrary objects unless the user opts in.

torch >= 2.6 loads with ``weights_only=True`` by default. mmengine's checkpoints hold a few
non-tensor objects (numpy scalars, ``HistoryBuffer`` in the message hub), and
onedl-mmengine answers a failed safe load by silently retrying with full unpickling, which
executes whatever the file contains. mmrs replaces that loader:

- the file is loaded with ``weights_only=True`` and an explicit allowlist of the types
  mmengine itself writes (see :func:`safe_globals_for_mmengine`);
- if that fails, :class:`UnsafeCheckpointError` names the file and the rejected type and
  says how to opt in; nothing is unpickled;
- full unpickling happens only when the user opts in, with
  ``MMRS_ALLOW_UNSAFE_CHECKPOINTS=1``, :func:`allow_unsafe_checkpoints` or
  ``--allow-unsafe-checkpoint`` on ``tools/train.py`` / ``tools/test.py``.
"""
import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

ENV_FLAG = 'MMRS_ALLOW_UNSAFE_CHECKPOINTS'
_unsafe_allowed = False


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds objects outside the allowlist and the user did not opt in."""


def unsafe_checkpoints_allowed() -> bool:
    """Whether the user opted in to full unpickling (flag or environment variable)."""
    return _unsafe_allowed or os.environ.get(ENV_FLAG, '') in ('1', 'true', 'yes')


@contextmanager
def allow_unsafe_checkpoints(enabled: bool = True) -> Iterator[None]:
    """Opt in (inside the ``with`` block) to loading checkpoints with full unpickling.

    Only do this for files you trust: unpickling can run arbitrary code.
    """
    global _unsafe_allowed
    previous, _unsafe_allowed = _unsafe_allowed, enabled
    try:
        yield
    finally:
        _unsafe_allowed = previous


def set_unsafe_checkpoints(enabled: bool) -> None:
    """Process-wide form of :func:`allow_unsafe_checkpoints` (used by the CLI flag)."""
    global _unsafe_allowed
    _unsafe_allowed = enabled


def safe_globals_for_mmengine() -> list[Any]:
    """Types that mmengine and mmrs write into checkpoints and that are safe to rebuild."""
    from mmengine.logging.history_buffer import HistoryBuffer
    allowed: list[Any] = [
        HistoryBuffer,
        np.core.multiarray.scalar if hasattr(np, 'core') else np._core.multiarray.scalar,
        np.dtype,
        np.ndarray,
        np.core.multiarray._reconstruct
        if hasattr(np, 'core') else np._core.multiarray._reconstruct,
    ]
    for name in ('float64', 'float32', 'int64', 'int32', 'bool_', 'uint8'):
        allowed.append(type(np.dtype(getattr(np, name))))
    return allowed


def safe_torch_load(file: Any, map_location: Any = None,
                    weights_only: bool | None = None) -> Any:
    """Load a checkpoint under mmrs' policy (see the module docstring).

    Args:
        file: A path or a file-like object.
        map_location: As for :func:`torch.load`.
        weights_only: ``True`` forces the safe path; ``False`` asks for full unpickling,
            which is honoured only when the user opted in; ``None`` means "safe path,
            and full unpickling if the user opted in and the safe path fails".

    Raises:
        UnsafeCheckpointError: The file needs full unpickling and the user did not opt in.
    """
    allow = unsafe_checkpoints_allowed()
    if weights_only is False and allow:
        return torch.load(file, map_location=map_location, weights_only=allow is False)
    try:
        with torch.serialization.safe_globals(safe_globals_for_mmengine()):
            return torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if allow and weights_only is not True:
            if hasattr(file, 'seek'):
                file.seek(0)
            return torch.load(file, map_location=map_location, weights_only=not allow)
        name = getattr(file, 'name', file)
        raise UnsafeCheckpointError(
            f'Refusing to unpickle checkpoint {name!r}: it holds objects outside the '
            f'safe allowlist ({error}). If you trust this file, opt in with '
            f'{ENV_FLAG}=1 or --allow-unsafe-checkpoint.') from None


def install_checkpoint_policy() -> None:
    """Route every mmengine checkpoint load (``load_checkpoint``, ``--resume``) through
    :func:`safe_torch_load`, replacing onedl-mmengine's silent unsafe fallback."""
    from mmengine.runner import checkpoint as mmengine_checkpoint
    mmengine_checkpoint._safe_torch_load = safe_torch_load
