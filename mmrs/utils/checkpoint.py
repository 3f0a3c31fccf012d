"""Checkpoint loading that never unpickles arbitrary objects unless the user opts in.

torch >= 2.6 loads with ``weights_only=True`` by default. mmengine's checkpoints hold a few
non-tensor objects (numpy scalars, ``HistoryBuffer`` in the message hub), and
onedl-mmengine answers a failed safe load by silently retrying with full unpickling, which
executes whatever the file contains. Its URL schemes are worse: ``http(s)://``,
``torchvision://``, ``open-mmlab://`` and ``mmcls://`` end in
``torch.hub.load_state_dict_from_url``, which unpickles with ``weights_only=False``, so a
file already in torch's hub cache (``$TORCH_HOME/hub/checkpoints/<name of the URL>``) runs
its code on load. mmrs replaces both loaders, so every scheme of mmengine's
``CheckpointLoader`` (local files, URLs, ``pavi://``, ``s3://``) follows one policy:

- the file is loaded with ``weights_only=True`` and an explicit allowlist of the types
  mmengine itself writes (see :func:`safe_globals_for_mmengine`);
- if that fails, :class:`UnsafeCheckpointError` names the file (and the URL) and the
  rejected type and says how to opt in; nothing is unpickled;
- full unpickling happens only when the user opts in, with
  ``MMRS_ALLOW_UNSAFE_CHECKPOINTS=1``, :func:`allow_unsafe_checkpoints` or
  ``--allow-unsafe-checkpoint`` on ``tools/train.py`` / ``tools/test.py``.

It also checks that a checkpoint fits a model (:func:`find_key_mismatches`), which
``tools/test.py`` uses to refuse a checkpoint that mmengine would load only partially.
"""
import os
import os.path as osp
import pickle
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

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


def _refusal(name: str, error: Exception) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f'Refusing to unpickle checkpoint {name}: it holds objects outside the safe '
        f'allowlist ({error}). If you trust this file, opt in with {ENV_FLAG}=1 or '
        '--allow-unsafe-checkpoint.')


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
        if weights_only is True or not unsafe_checkpoints_allowed():
            raise _refusal(repr(getattr(file, 'name', file)), error) from None
        if hasattr(file, 'seek'):
            file.seek(0)
        # Reached only after the user opted in explicitly (flag, environment variable or
        # allow_unsafe_checkpoints()).
        return torch.load(file, map_location=map_location, weights_only=False)


def hub_cache_path(url: str, model_dir: str | None = None, file_name: str | None = None) -> str:
    """Where ``torch.hub.load_state_dict_from_url`` keeps (or will keep) ``url``'s file."""
    folder = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    return osp.join(folder, file_name or osp.basename(urlparse(url).path))


def safe_load_url(url: str, model_dir: str | None = None, map_location: Any = None,
                  progress: bool = True, check_hash: bool = False,
                  file_name: str | None = None, weights_only: bool | None = None) -> Any:
    """``torch.hub.load_state_dict_from_url`` under mmrs' policy.

    Downloads ``url`` into torch's hub cache unless a file of that name is already there
    (torch's own rule, kept so cached weights are reused), then loads it as
    :func:`safe_torch_load` loads local files. mmrs installs this as the ``load_url`` of
    mmengine's checkpoint module, which every URL scheme of ``CheckpointLoader``
    (``http(s)://``, ``torchvision://``, ``open-mmlab://``, ``mmcls://``) ends in.

    Args:
        url: The checkpoint's URL.
        model_dir: Cache folder; default ``<torch hub dir>/checkpoints``.
        map_location: As for :func:`torch.load`.
        progress: Show a download progress bar.
        check_hash: Verify the SHA256 prefix in the file name (torch's convention).
        file_name: Cache the file under this name instead of the URL's.
        weights_only: As for :func:`safe_torch_load`.

    Raises:
        UnsafeCheckpointError: The file needs full unpickling and the user did not opt in;
            the message names the URL and the cached file.
    """
    kwargs = dict(model_dir=model_dir, map_location=map_location, progress=progress,
                  check_hash=check_hash, file_name=file_name)
    try:
        with torch.serialization.safe_globals(safe_globals_for_mmengine()):
            return torch.hub.load_state_dict_from_url(url, weights_only=True, **kwargs)
    except pickle.UnpicklingError as error:
        if weights_only is True or not unsafe_checkpoints_allowed():
            cached = hub_cache_path(url, model_dir, file_name)
            raise _refusal(f'{url!r} (cached at {cached!r})', error) from None
        # Reached only after the user opted in explicitly; the file is cached by now.
        return torch.hub.load_state_dict_from_url(url, weights_only=False, **kwargs)


def install_checkpoint_policy() -> None:
    """Route every mmengine checkpoint load through mmrs' policy.

    Two functions of ``mmengine.runner.checkpoint`` are replaced, because every scheme of
    its ``CheckpointLoader`` reads a file through one of them (``tests/utils/
    test_checkpoint_policy.py`` walks the registered schemes so a new one cannot slip by):

    - ``_safe_torch_load`` (local files, ``--resume``, ``pavi://``, ``s3://``, a local
      ``open-mmlab://`` entry): onedl-mmengine's version silently retries unsafely;
    - ``load_url`` (``http(s)://`` and everything built on it): torch's hub loader
      unpickles with ``weights_only=False``.

    Raises:
        ImportError: mmengine no longer has these functions (a new mmengine moved them;
            loading checkpoints would silently bypass the policy).
    """
    from mmengine.runner import checkpoint as mmengine_checkpoint
    from mmengine.utils import dl_utils
    for name in ('_safe_torch_load', 'load_url'):
        if not callable(getattr(mmengine_checkpoint, name, None)):
            raise ImportError(f'mmengine.runner.checkpoint.{name} is missing: this mmengine '
                              'is not the one mmrs was tested with, and checkpoints would '
                              'be loaded without mmrs\' safety policy.')
    mmengine_checkpoint._safe_torch_load = safe_torch_load
    mmengine_checkpoint.load_url = safe_load_url
    dl_utils.load_url = safe_load_url  # for code that imports it from mmengine later


class CheckpointKeyMismatchError(RuntimeError):
    """A checkpoint's weights do not fit the model (missing, unexpected or resized keys)."""


@dataclass
class KeyMismatch:
    """How a checkpoint's state dict differs from a model's.

    Attributes:
        missing: Model keys the checkpoint does not have.
        unexpected: Checkpoint keys the model does not have.
        shape: ``(key, checkpoint shape, model shape)`` for keys whose shapes differ.
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shape)

    def describe(self, limit: int = 20) -> str:
        """A readable list (at most ``limit`` keys per kind, then a count)."""

        def listed(title: str, items: list[str]) -> str:
            more = f'\n    ... and {len(items) - limit} more' if len(items) > limit else ''
            return f'  {title} ({len(items)}):\n    ' + '\n    '.join(items[:limit]) + more

        parts = []
        if self.missing:
            parts.append(listed('missing in the checkpoint', self.missing))
        if self.unexpected:
            parts.append(listed('unexpected (not in the model)', self.unexpected))
        if self.shape:
            parts.append(listed('shape differs (checkpoint vs model)', [
                f'{key}: {tuple(a)} vs {tuple(b)}' for key, a, b in self.shape]))
        return '\n'.join(parts)


def find_key_mismatches(model_state: Mapping[str, Any], checkpoint_state: Mapping[str, Any],
                        revise_keys: tuple[tuple[str, str], ...] = ((r'^module\.', ''),)
                        ) -> KeyMismatch:
    """Compare a model's ``state_dict()`` with a checkpoint's, as mmengine would load it.

    ``revise_keys`` are applied to the checkpoint keys first (mmengine's default strips a
    DDP ``module.`` prefix). Missing BatchNorm ``num_batches_tracked`` counters are not
    reported (mmengine ignores them too: old checkpoints lack them).
    """
    revised = {}
    for key, value in checkpoint_state.items():
        for pattern, replacement in revise_keys:
            key = re.sub(pattern, replacement, key)
        revised[key] = value
    result = KeyMismatch(
        missing=[k for k in model_state
                 if k not in revised and not k.endswith('num_batches_tracked')],
        unexpected=[k for k in revised if k not in model_state])
    for key, value in revised.items():
        if key in model_state and hasattr(value, 'shape') and hasattr(model_state[key], 'shape'):
            if tuple(value.shape) != tuple(model_state[key].shape):
                result.shape.append((key, tuple(value.shape), tuple(model_state[key].shape)))
    return result


def check_checkpoint_fits(model: torch.nn.Module, checkpoint: Mapping[str, Any],
                          name: str = 'the checkpoint') -> None:
    """Raise if ``checkpoint`` (a loaded mmengine checkpoint or a bare state dict) does not
    fit ``model`` exactly.

    Raises:
        CheckpointKeyMismatchError: Listing missing, unexpected and resized keys.
    """
    state = checkpoint.get('state_dict', checkpoint)
    mismatch = find_key_mismatches(model.state_dict(), state)
    if mismatch:
        raise CheckpointKeyMismatchError(
            f'{name} does not fit the model:\n{mismatch.describe()}\nmmengine would load '
            'only the matching weights and evaluate the rest at their initial values. Use '
            'the checkpoint trained with this config, or pass --allow-key-mismatch to load '
            'it partially anyway.')


def load_checkpoint_into(model: torch.nn.Module, checkpoint: str,
                         allow_key_mismatch: bool = False) -> dict:
    """Load a runner checkpoint (file or URL) into ``model`` under mmrs' policy, as the
    inferencers do; returns its ``meta`` (``{}`` without one).

    ``module.`` prefixes (DDP) are stripped; a checkpoint that fits only partially is refused
    (:func:`check_checkpoint_fits`) unless ``allow_key_mismatch``.

    Raises:
        FileNotFoundError: A local ``checkpoint`` that does not exist.
        ValueError: A file that is not a state dict.
        CheckpointKeyMismatchError, UnsafeCheckpointError: See above / the module docstring.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    if '://' not in str(checkpoint) and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {str(checkpoint)!r} does not exist')
    ckpt = CheckpointLoader.load_checkpoint(str(checkpoint), map_location='cpu')
    if not isinstance(ckpt, dict):
        raise ValueError(f'checkpoint {str(checkpoint)!r} is not a state dict')
    state = ckpt.get('state_dict', ckpt)
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    if not allow_key_mismatch:
        check_checkpoint_fits(model, state, name=f'checkpoint {str(checkpoint)!r}')
    model.load_state_dict(state, strict=not allow_key_mismatch)
    meta = ckpt.get('meta')
    return meta if isinstance(meta, dict) else {}
