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
    """Types and callables that mmengine writes into checkpoints, safe to rebuild.

    ``getattr`` is needed because ``HistoryBuffer`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``. It is harmless under torch's weights-only unpickler:
    that unpickler calls (REDUCE) only the allowlisted callables themselves, never an object
    that ``getattr`` returns, so no attribute lookup can be turned into a call.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    numpy_core = np._core if hasattr(np, '_core') else np.core
    allowed: list[Any] = [
        HistoryBuffer, getattr, slice, np.ndarray, np.dtype,
        numpy_core.multiarray.scalar, numpy_core.multiarray._reconstruct
    ]
    for name in ('float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64',
                 'uint8', 'uint16', 'uint32', 'uint64', 'bool_'):
        allowed.append(type(np.dtype(getattr(np, name))))
    return allowed


def safe_torch_load(file: Any, map_location: Any = None,
                    weights_only: bool | None = None) -> Any:
    """Load a checkpoint under mmrs' policy (see the module docstring).

    Args:
        file: A path or a file-like object.
        map_location: As for :func:`torch.load`.
        weights_only: ``True`` forces the safe path even for users who opted in; ``False``
            or ``None`` try the safe path first and fall back to full unpickling only for
            users who opted in.

    Raises:
        UnsafeCheckpointError: The file needs full unpickling and the user did not opt in.
    """
    try:
        with torch.serialization.safe_globals(safe_globals_for_mmengine()):
            return torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        name = getattr(file, 'name', file)
        if weights_only is True or not unsafe_checkpoints_allowed():
            raise UnsafeCheckpointError(
                f'Refusing to unpickle checkpoint {name!r}: it holds objects outside the '
                f'safe allowlist ({error}). If you trust this file, opt in with '
                f'{ENV_FLAG}=1 or --allow-unsafe-checkpoint.') from None
        if hasattr(file, 'seek'):
            file.seek(0)
        # Reached only after the user opted in explicitly (flag, environment variable or
        # allow_unsafe_checkpoints()).
        return torch.load(file, map_location=map_location, weights_only=False)


def install_checkpoint_policy() -> None:
    """Route every mmengine checkpoint load (``load_checkpoint``, ``--resume``) through
    :func:`safe_torch_load`, replacing onedl-mmengine's silent unsafe fallback."""
    from mmengine.runner import checkpoint as mmengine_checkpoint
    mmengine_checkpoint._safe_torch_load = safe_torch_load
