"""Read the remote-sensing CLIP families' published checkpoints as open_clip state dicts.

Every family publishes its weights in its own file layout. :func:`load_clip_state_dict`
reads a local file, a URL or an in-memory mapping under mmrs' checkpoint policy (weights
only, :mod:`mmrs.utils.checkpoint`), unwraps training wrappers, converts the family's keys
to open_clip's canonical ones and, given the model, checks every key and shape against it.
The facts below come from the families' own code (``docs/clip_layouts.md`` cites each one).

Layouts (``checkpoint_layout``) and what each published file holds:

- ``remoteclip``: ``RemoteCLIP-*.pt``, a bare open_clip state dict;
- ``georsclip``: ``RS5M_ViT-*.pt``, a bare open_clip state dict; ITRA training files put the
  towers under ``image_backbone.`` / ``text_backbone.`` (renamed to ``visual.`` / top level);
- ``skyclip``: open_clip training files ``{epoch, name, state_dict: {module.*}, optimizer}``;
- ``farslip``: open_clip keys; FarSLIP-2 (Long-CLIP text) adds ``positional_embedding_res``
  (248, W) and buffers ``mask1`` / ``mask2`` (248, 1), merged as described below;
- ``rsmclip``: open_clip ``CustomTextCLIP`` with an HF XLM-RoBERTa text tower
  (``text.transformer.*``, ``text.proj.*``);
- ``openclip``: any open_clip / OpenAI CLIP state dict, bare or wrapped.

RemoteCLIP, the released GeoRSCLIP files, SkyCLIP and FarSLIP-1 all hold plain open_clip
keys, so :func:`detect_layout` reports them as ``'openclip'``; naming the family
(``layout='remoteclip'``) checks that the file has that family's structure.

FarSLIP-2's text encoder adds ``positional_embedding * mask1 + positional_embedding_res *
mask2`` to the token embeddings (``mask1`` is 1 on the first 20 positions, ``mask2`` on the
other 228). The masks are disjoint and fixed, so that sum is one (248, W) table: the loader
stores it as ``positional_embedding`` and the checkpoint loads strictly into a plain open_clip
CLIP built with ``text_cfg.context_length=248``, computing exactly what FarSLIP computes. The
model needs no extra parameters; the tokenizer must produce 248 tokens.
"""
import math
import os
import os.path as osp
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import torch
import torch.nn as nn
from torch import Tensor

from mmrs.utils.checkpoint import hub_cache_path, safe_load_url, safe_torch_load


class CLIPCheckpointError(ValueError):
    """A CLIP checkpoint cannot be read, has an unknown layout or does not fit the model."""


@dataclass(frozen=True)
class Layout:
    """One family's checkpoint layout.

    Attributes:
        name: The ``checkpoint_layout`` value.
        structures: The key structures (see :func:`detect_layout`) its files may have.
        files: The published file names, for error messages and docs.
    """

    name: str
    structures: tuple[str, ...]
    files: str


#: The layouts :func:`load_clip_state_dict` accepts (besides ``'auto'``).
LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (
    Layout('openclip', ('openclip',), 'any open_clip / OpenAI CLIP state dict'),
    Layout('remoteclip', ('openclip',), 'RemoteCLIP-{RN50,ViT-B-32,ViT-L-14}.pt'),
    Layout('georsclip', ('openclip', 'georsclip'), 'RS5M_ViT-B-32.pt, RS5M_ViT-H-14.pt'),
    Layout('skyclip', ('openclip',), 'epoch_N.pt inside SkyCLIP_ViT_{B32,L14}_*.zip'),
    Layout('farslip', ('openclip', 'farslip'), 'FarSLIP{1,2}_ViT-B-{16,32}.pt'),
    Layout('rsmclip', ('rsmclip',), 'open_clip_pytorch_model.bin / open_clip_model.safetensors'
                                    ' of joaodaniel/RS-M-CLIP'),
)}

#: Keys of an OpenAI JIT state dict that are not weights (open_clip drops them too).
_OPENAI_EXTRAS = ('input_resolution', 'context_length', 'vocab_size')
#: Wrappers training scripts put around the weights, tried in this order.
_WRAPPER_KEYS = ('state_dict', 'model', 'module', 'model_state_dict')
#: Whole-file prefixes: DDP / DeepSpeed (``module.``), an mmrs runner checkpoint (``clip.``).
_PREFIXES = ('module.', 'clip.')
#: FarSLIP's Long-CLIP keeps the first 20 positions of ``positional_embedding``
#: (``mask1[:20] = 1``, FarSLIP ``open_clip/model.py``); used if a file lacks the masks.
FARSLIP_KEEP_POSITIONS = 20
_HF_TEXT_MARK = 'text.transformer.embeddings.word_embeddings.weight'


# ---------------------------------------------------------------------------- reading
def _is_url(source: str) -> bool:
    return urlparse(source).scheme in ('http', 'https', 'file')


def _file_kind(path: str) -> str:
    """``'safetensors'``, ``'zip'`` (torch >= 1.6) or ``'legacy'`` (pickle), else raise."""
    with open(path, 'rb') as f:
        head = f.read(16)
    if zipfile.is_zipfile(path):
        return 'zip'
    if path.endswith('.safetensors') or (len(head) > 8 and head[8:9] == b'{'):
        return 'safetensors'
    if head.startswith(b'PK'):
        raise CLIPCheckpointError(
            f'{path}: a zip-format PyTorch checkpoint without its central directory; the '
            'file is truncated or corrupt (download it again)')
    if head[:1] == b'\x80':
        return 'legacy'
    raise CLIPCheckpointError(
        f'{path} is not a PyTorch or safetensors checkpoint (it starts with {head[:8]!r}); '
        f'the CLIP layouts expect files such as: '
        + '; '.join(f'{k}: {v.files}' for k, v in LAYOUTS.items() if k != 'openclip'))


def _read_safetensors(path: str, name: str) -> dict[str, Tensor]:
    from safetensors.torch import load_file
    try:
        return load_file(path, device='cpu')
    except Exception as err:  # safetensors raises its own SafetensorError
        raise CLIPCheckpointError(f'{name}: unreadable safetensors file ({err})') from err


def read_checkpoint(source: str | os.PathLike, cache_dir: str | None = None,
                    map_location: Any = 'cpu') -> Any:
    """Load a checkpoint file or URL as Python objects, weights only.

    Args:
        source: A local path, or an ``http(s)://`` / ``file://`` URL (downloaded into
            ``cache_dir``, default torch's hub cache, and reused from there).
        cache_dir: Download folder for URLs.
        map_location: As for :func:`torch.load`.

    Raises:
        FileNotFoundError: No such local file.
        CLIPCheckpointError: Not a checkpoint, truncated or corrupt (names the file).
        mmrs.utils.checkpoint.UnsafeCheckpointError: The file holds pickled objects and
            the user did not opt in to full unpickling.
    """
    source = os.fspath(source)
    if _is_url(source):
        if urlparse(source).path.endswith('.safetensors'):
            cached = hub_cache_path(source, cache_dir)
            if not osp.exists(cached):
                os.makedirs(osp.dirname(cached), exist_ok=True)
                torch.hub.download_url_to_file(source, cached, progress=False)
            return _read_safetensors(cached, f'{source} (cached at {cached})')
        try:
            return safe_load_url(source, model_dir=cache_dir, map_location=map_location,
                                 progress=False)
        except (RuntimeError, EOFError, OSError) as err:
            raise CLIPCheckpointError(
                f'{source} (cached at {hub_cache_path(source, cache_dir)}) could not be '
                f'downloaded or read as a checkpoint: {err}') from err
    if not osp.isfile(source):
        raise FileNotFoundError(f'CLIP checkpoint not found: {source}')
    if _file_kind(source) == 'safetensors':
        return _read_safetensors(source, source)
    try:
        return safe_torch_load(source, map_location=map_location)
    except (RuntimeError, EOFError) as err:
        raise CLIPCheckpointError(
            f'{source} is not a readable PyTorch checkpoint (truncated or corrupt?): '
            f'{type(err).__name__}: {err}') from err


# --------------------------------------------------------------------------- structure
def unwrap_state_dict(obj: Any, name: str = 'the checkpoint') -> dict[str, Tensor]:
    """The tensors of a checkpoint, out of training wrappers and whole-file prefixes.

    Wrappers: ``state_dict`` (open_clip / ITRA / mmengine training files), ``model``,
    ``module``, ``model_state_dict``. Prefixes (when every key has it): ``module.`` (DDP),
    ``clip.`` (an mmrs :class:`~mmrs.models.clip.CLIP` checkpoint). Non-tensor entries
    (OpenAI's JIT ints, bookkeeping) are dropped.

    Raises:
        CLIPCheckpointError: ``obj`` is not a mapping, or holds no tensors.
    """
    while isinstance(obj, Mapping) and not any(isinstance(v, Tensor) for v in obj.values()):
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise CLIPCheckpointError(f'{name} is not a CLIP checkpoint: it holds a '
                                  f'{type(obj).__name__}, not a state dict')
    state = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not state:
        raise CLIPCheckpointError(
            f'{name} is not a CLIP checkpoint: no tensors found (top-level keys: '
            f'{sorted(map(str, obj))[:10]}); expected a state dict, bare or under one of '
            f'{list(_WRAPPER_KEYS)}')
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    for key in _OPENAI_EXTRAS:
        state.pop(key, None)
    return state


def _structure(state: Mapping[str, Any]) -> str | None:
    keys = state.keys()
    if any(k.startswith(('image_backbone.', 'text_backbone.')) for k in keys):
        return 'georsclip'
    if 'positional_embedding_res' in keys:
        return 'farslip'
    if _HF_TEXT_MARK in keys:
        return 'rsmclip'
    has_visual = any(k.startswith('visual.') for k in keys)
    if has_visual and ('token_embedding.weight' in keys or 'text.token_embedding.weight' in keys):
        return 'openclip'
    return None


def _seen(state: Mapping[str, Any], limit: int = 12) -> str:
    prefixes = sorted({'.'.join(k.split('.')[:2]) for k in state})
    more = f' ... ({len(prefixes)} in all)' if len(prefixes) > limit else ''
    return ', '.join(prefixes[:limit]) + more


def detect_layout(state: Mapping[str, Any]) -> str:
    """The key structure of a (possibly wrapped) state dict.

    Returns:
        ``'georsclip'`` (ITRA ``image_backbone.`` / ``text_backbone.`` keys), ``'farslip'``
        (Long-CLIP ``positional_embedding_res``), ``'rsmclip'`` (HF XLM-RoBERTa text tower)
        or ``'openclip'`` (open_clip keys: RemoteCLIP, released GeoRSCLIP, SkyCLIP,
        FarSLIP-1 files all look like this).

    Raises:
        CLIPCheckpointError: None of these; the message lists the key prefixes seen.
    """
    state = unwrap_state_dict(state)
    found = _structure(state)
    if found is None:
        raise CLIPCheckpointError(
            f'unknown CLIP checkpoint layout; key prefixes seen: {_seen(state)}. Known: '
            'open_clip keys (visual.* with token_embedding.weight), ITRA image_backbone.* / '
            'text_backbone.* (GeoRSCLIP), positional_embedding_res (FarSLIP Long-CLIP), '
            f'{_HF_TEXT_MARK} (RS-M-CLIP)')
    return found


def _convert(state: dict[str, Tensor], structure: str) -> dict[str, Tensor]:
    """Rename / merge a structure's keys into open_clip's canonical ones."""
    if structure == 'georsclip':
        out = {}
        for key, value in state.items():
            if key.startswith('image_backbone.'):
                key = 'visual.' + key[len('image_backbone.'):]
            elif key.startswith('text_backbone.'):
                key = key[len('text_backbone.'):]
            out[key] = value
        return out
    if structure == 'farslip':
        state = dict(state)
        base = state.pop('positional_embedding')
        res = state.pop('positional_embedding_res')
        mask1, mask2 = state.pop('mask1', None), state.pop('mask2', None)
        if mask1 is None or mask2 is None:
            mask1 = torch.zeros(base.shape[0], 1, dtype=base.dtype, device=base.device)
            mask1[:FARSLIP_KEEP_POSITIONS] = 1
            mask2 = 1 - mask1
        # FarSLIP's text forward adds exactly this sum (its CLIP.encode_text).
        state['positional_embedding'] = base * mask1 + res * mask2
        return state
    if structure == 'rsmclip':
        # Derived buffer (an arange), saved by transformers < 4.31 only; not a weight.
        return {k: v for k, v in state.items() if not k.endswith('embeddings.position_ids')}
    return dict(state)


# ------------------------------------------------------------------------ architecture
def _count(state: Mapping[str, Any], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for k in state if (m := regex.match(k))})


def describe_architecture(state: Mapping[str, Any]) -> dict[str, Any]:
    """What a canonical state dict's shapes say about its architecture (no values read).

    Returns:
        Some of ``vision`` (``'ViT'`` / ``'ModifiedResNet'``), ``vision_width``,
        ``vision_layers``, ``patch_size``, ``image_size``, ``embed_dim``, ``text``
        (``'clip'`` / ``'hf'``), ``text_width``, ``text_layers``, ``context_length``,
        ``vocab_size``: whatever the keys present determine.
    """
    arch: dict[str, Any] = {}
    shape = {k: tuple(v.shape) for k, v in state.items() if hasattr(v, 'shape')}
    if 'visual.class_embedding' in shape and 'visual.conv1.weight' in shape:
        width, _, patch, _ = shape['visual.conv1.weight']
        tokens = shape.get('visual.positional_embedding', (1,))[0]
        arch.update(vision='ViT', vision_width=width, patch_size=patch,
                    vision_layers=_count(state, r'visual\.transformer\.resblocks\.(\d+)\.'))
        if tokens > 1:
            arch['image_size'] = math.isqrt(tokens - 1) * patch
        if 'visual.proj' in shape:
            arch['embed_dim'] = shape['visual.proj'][1]
    elif 'visual.attnpool.positional_embedding' in shape:
        tokens = shape['visual.attnpool.positional_embedding'][0]
        arch.update(vision='ModifiedResNet', image_size=math.isqrt(tokens - 1) * 32,
                    vision_layers=tuple(_count(state, rf'visual\.layer{i}\.(\d+)\.')
                                        for i in range(1, 5)))
        if 'visual.conv3.weight' in shape:
            arch['vision_width'] = shape['visual.conv3.weight'][0]
        if 'visual.attnpool.c_proj.weight' in shape:
            arch['embed_dim'] = shape['visual.attnpool.c_proj.weight'][0]
    if 'token_embedding.weight' in shape:
        arch.update(text='clip', vocab_size=shape['token_embedding.weight'][0],
                    text_width=shape['token_embedding.weight'][1],
                    text_layers=_count(state, r'transformer\.resblocks\.(\d+)\.'))
        if 'positional_embedding' in shape:
            arch['context_length'] = shape['positional_embedding'][0]
    elif _HF_TEXT_MARK in shape:
        arch.update(text='hf', vocab_size=shape[_HF_TEXT_MARK][0],
                    text_width=shape[_HF_TEXT_MARK][1],
                    text_layers=_count(state, r'text\.transformer\.encoder\.layer\.(\d+)\.'))
    return arch


def _hints(state: Mapping[str, Any], model_state: Mapping[str, Any]) -> str:
    ours, theirs = describe_architecture(state), describe_architecture(model_state)
    differ = {k: (v, theirs.get(k)) for k, v in ours.items() if theirs.get(k) != v}
    if not differ:
        return ''
    lines = [f'    {k}: checkpoint {a!r}, model {b!r}' for k, (a, b) in differ.items()]
    text = '\n  architecture (checkpoint vs model):\n' + '\n'.join(lines)
    if 'context_length' in differ:
        text += ('\n  build the model with model_cfg=dict(text_cfg=dict(context_length='
                 f'{ours["context_length"]})) (FarSLIP-2 Long-CLIP text: 248; others: 77)')
    if 'image_size' in differ and 'patch_size' not in differ and 'vision' not in differ:
        text += ('\n  build the model with model_cfg=dict(vision_cfg=dict(image_size='
                 f'{ours["image_size"]}))')
    return text


def check_fits(state: dict[str, Tensor], model: nn.Module | Mapping[str, Any],
               name: str = 'the checkpoint', layout: str = '') -> dict[str, Tensor]:
    """Fit a canonical state dict to ``model`` (or its ``state_dict()``) key by key.

    Harmless differences are repaired: ``logit_scale`` / ``logit_bias`` saved as shape
    ``(1,)`` vs ``()``, missing BatchNorm ``num_batches_tracked`` counters, and saved copies
    of buffers the model derives (non-persistent ``attn_mask`` / ``position_ids``).
    Meta-device models work (only shapes are compared).

    Returns:
        The state dict, ready for ``model.load_state_dict(state, strict=True)``.

    Raises:
        CLIPCheckpointError: Missing, unexpected or resized keys, with the architecture each
            side implies and how to configure the model for the checkpoint.
    """
    expected = model.state_dict() if isinstance(model, nn.Module) else model
    state = dict(state)
    if isinstance(model, nn.Module):
        derived = {n for n, _ in model.named_buffers()} - set(expected)
        state = {k: v for k, v in state.items() if k not in derived}
    for key in ('logit_scale', 'logit_bias'):
        if key in state and key in expected and state[key].numel() == expected[key].numel():
            state[key] = state[key].reshape(expected[key].shape)
    for key in expected:
        if key not in state and key.endswith('num_batches_tracked'):
            state[key] = torch.zeros((), dtype=torch.long)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    resized = [f'{k}: {tuple(v.shape)} vs {tuple(expected[k].shape)}' for k, v in state.items()
               if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if missing or unexpected or resized:
        parts = [f'{title} ({len(items)}): {items[:8]}' + (' ...' if len(items) > 8 else '')
                 for title, items in (('missing in the checkpoint', missing),
                                      ('not in the model', unexpected),
                                      ('shape (checkpoint vs model)', resized)) if items]
        raise CLIPCheckpointError(
            f'{name} (layout {layout!r}) does not fit the model:\n  ' + '\n  '.join(parts)
            + _hints(state, expected))
    return state


# -------------------------------------------------------------------------------- API
def load_clip_state_dict(source: str | os.PathLike | Mapping[str, Any], layout: str = 'auto',
                         *, model: nn.Module | Mapping[str, Any] | None = None,
                         cache_dir: str | None = None, map_location: Any = 'cpu'
                         ) -> tuple[dict[str, Tensor], str]:
    """Read a CLIP family checkpoint as an open_clip state dict.

    Args:
        source: A local file (``.pt`` / ``.pth`` / ``.bin`` / ``.safetensors``), an
            ``http(s)://`` or ``file://`` URL, or an already loaded mapping.
        layout: One of :data:`LAYOUTS`, or ``'auto'`` (see :func:`detect_layout`).
        model: If given (an open_clip model or its ``state_dict()``, meta tensors fine),
            the result is checked against it key by key (:func:`check_fits`).
        cache_dir: Download folder for URLs (default: torch's hub cache).
        map_location: As for :func:`torch.load`.

    Returns:
        ``(state_dict, layout)``: open_clip canonical keys (``visual.*``, ``transformer.*``,
        ``token_embedding.weight``, ``positional_embedding``, ``ln_final.*``,
        ``text_projection``, ``logit_scale``; ``text.*`` for HF text towers) and the layout
        read: the one asked for, or the detected structure for ``'auto'``.

    Raises:
        FileNotFoundError, CLIPCheckpointError, UnsafeCheckpointError: see
            :func:`read_checkpoint`; also an unknown ``layout``, a file whose structure is
            not that layout's, an unknown structure, or (with ``model``) a misfit.
    """
    if layout != 'auto' and layout not in LAYOUTS:
        raise CLIPCheckpointError(f'unknown checkpoint_layout {layout!r}; choose one of '
                                  f"{['auto', *LAYOUTS]}")
    if isinstance(source, Mapping):
        name, obj = 'the in-memory checkpoint', source
    else:
        name, obj = os.fspath(source), read_checkpoint(source, cache_dir, map_location)
    state = unwrap_state_dict(obj, name)
    structure = _structure(state)
    if structure is None:
        raise CLIPCheckpointError(
            f'{name}: unknown CLIP checkpoint layout; key prefixes seen: {_seen(state)}. '
            f'Known layouts: ' + '; '.join(f'{k} ({v.files})' for k, v in LAYOUTS.items()))
    if layout != 'auto' and structure not in LAYOUTS[layout].structures:
        raise CLIPCheckpointError(
            f'{name} was given as layout {layout!r} ({LAYOUTS[layout].files}) but its keys '
            f'have the {structure!r} structure (key prefixes: {_seen(state)}); use '
            f"checkpoint_layout='auto' or {structure!r}")
    state = _convert(state, structure)
    found = structure if layout == 'auto' else layout
    if model is not None:
        state = check_fits(state, model, name, found)
    return state, found


def load_clip_checkpoint(model: nn.Module, source: str | os.PathLike | Mapping[str, Any],
                         layout: str = 'auto', cache_dir: str | None = None) -> str:
    """Load a family checkpoint into an open_clip ``model`` strictly; return the layout."""
    state, found = load_clip_state_dict(source, layout, model=model, cache_dir=cache_dir)
    model.load_state_dict(state, strict=True, assign=next(model.parameters()).is_meta)
    return found
