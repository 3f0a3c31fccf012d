"""Where a CLIP-family model config takes its checkpoint, for ``tools/test.py``.

``tools/test.py CONFIG CHECKPOINT`` normally sets ``load_from`` and lets mmengine load the
runner checkpoint. CLIP-family models are evaluated mostly with the families' own files
(RemoteCLIP's ``RemoteCLIP-ViT-B-32.pt``, SkyCLIP's training checkpoint ...), whose keys are
open_clip's, not the mmrs model's (``clip.visual...`` for :class:`~mmrs.models.clip.CLIP`,
``clip.clip.visual...`` for the zero-shot classifier). Those go through
:func:`~mmrs.models.clip.layouts.load_clip_state_dict` instead: the test tool writes the file
into the config key that the model reads it from (``model.checkpoint`` or
``model.clip.checkpoint``), which also accepts mmrs runner checkpoints of a fine-tuned
:class:`~mmrs.models.clip.CLIP` (their ``clip.`` prefix is stripped) and loads strictly.
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


def route_clip_checkpoint(cfg: Any, checkpoint: str, layout: str | None = None) -> bool:
    """Point the config's CLIP at ``checkpoint`` (and ``layout``) if it is a CLIP-family
    model; returns whether it did (then the caller must not set ``load_from``)."""
    node = clip_config_of(cfg.get('model'))
    if node is None:
        return False
    node['checkpoint'] = checkpoint
    if layout is not None:
        node['checkpoint_layout'] = layout
    return True
