"""Where a CLIP-family model config takes its checkpoint, for ``tools/test.py``.

``tools/test.py CONFIG CHECKPOINT`` normally sets ``load_from`` and lets mmengine load the
runner checkpoint. CLIP-family models are evaluated mostly with the families' own files
(RemoteCLIP's ``RemoteCLIP-ViT-B-32.pt``, SkyCLIP's training checkpoint ...), whose keys are
open_clip's, not the mmrs model's (``clip.visual...`` for :class:`~mmrs.models.clip.CLIP`,
``clip.clip.visual...`` for the zero-shot classifier). Those go through
:func:`~mmrs.models.clip.layouts.load_clip_state_dict` instead: the test tool writes the file
into the config key that the model reads it from (``model.checkpoint`` or
``model.clip.checkpoint``), which loads strictly. An mmrs runner checkpoint of the model
under test itself (keys with the model's own prefix, e.g. a LoRA fine-tune evaluated with its
own config) keeps the usual ``load_from`` path; one of a fine-tuned ``CLIP`` evaluated by a
zero-shot config goes to the CLIP loader, which strips its ``clip.`` prefix.
"""
from __future__ import annotations

from typing import Any

#: Registered CLIP-family model types -> dotted path (below ``model``) of their CLIP config.
CLIP_CONFIG_PATHS: dict[str, tuple[str, ...]] = {
    'CLIP': (),
    'CLIPZeroShotClassifier': ('clip',),
}


def clip_config_of(model_cfg: Any) -> Any | None:
    """The CLIP sub-config (a config dict) that reads the checkpoint, or ``None`` when
    ``model_cfg`` is not a CLIP-family model."""
    if not hasattr(model_cfg, 'get'):
        return None
    name = str(model_cfg.get('type', '')).split('.')[-1]
    if name not in CLIP_CONFIG_PATHS:
        return None
    node = model_cfg
    for key in CLIP_CONFIG_PATHS[name]:
        node = node.get(key)
        if not hasattr(node, 'get') or str(node.get('type', '')).split('.')[-1] != 'CLIP':
            return None  # e.g. a prebuilt module: nothing to route
    return node


def runner_state_keys(checkpoint: str) -> list[str] | None:
    """State-dict keys of a local mmengine runner checkpoint (``meta`` + ``state_dict``), read
    memory-mapped and weights-only; ``None`` for anything else (URLs, family files, files
    that need more than the weights-only loader: the CLIP loader reports those)."""
    import os.path as osp
    import zipfile

    import torch

    from mmrs.utils.checkpoint import safe_globals_for_mmengine
    if '://' in str(checkpoint) or not osp.isfile(checkpoint) or \
            not zipfile.is_zipfile(checkpoint):
        return None
    try:
        with torch.serialization.safe_globals(safe_globals_for_mmengine()):
            obj = torch.load(checkpoint, map_location='cpu', mmap=True, weights_only=True)
    except Exception:  # noqa: BLE001 - not for this path; the CLIP loader says why
        return None
    if isinstance(obj, dict) and 'meta' in obj and isinstance(obj.get('state_dict'), dict):
        return list(obj['state_dict'])
    return None


def route_clip_checkpoint(cfg: Any, checkpoint: str, layout: str | None = None) -> bool:
    """Point the config's CLIP at ``checkpoint`` (and ``layout``) if it is a CLIP-family
    model and the file is not a runner checkpoint of that same model; returns whether it did
    (then the caller must not set ``load_from``)."""
    model_cfg = cfg.get('model')
    node = clip_config_of(model_cfg)
    if node is None:
        return False
    if layout is None:
        keys = runner_state_keys(checkpoint)
        depth = len(CLIP_CONFIG_PATHS[str(model_cfg.get('type')).split('.')[-1]])
        own_prefix = 'clip.' * (depth + 1)
        if keys and all(k.startswith(own_prefix) for k in keys):
            return False  # the model's own training checkpoint: mmengine loads it
    node['checkpoint'] = checkpoint
    if layout is not None:
        node['checkpoint_layout'] = layout
    return True
