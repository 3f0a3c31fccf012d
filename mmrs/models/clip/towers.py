"""Build open_clip CLIP models from an architecture name plus overrides, offline.

:func:`build_open_clip_model` is the one place mmrs turns ``(model_name, model_cfg,
quick_gelu)`` into an ``open_clip`` model with random weights: :class:`mmrs.models.clip.CLIP`
wraps it, and the dense CLIP backbone reuses it for its towers. Weights always come
afterwards from a checkpoint (:mod:`mmrs.models.clip.layouts`); nothing here downloads.

Architectures are open_clip's built-in model configs (``open_clip.list_models()``): the
remote-sensing families use

==================  ==========================  =========  ===================================
family              architecture(s)             quick_gelu initialised from / notes
==================  ==========================  =========  ===================================
RemoteCLIP          RN50, ViT-B-32, ViT-L-14    True       OpenAI CLIP
GeoRSCLIP (RS5M)    ViT-B-32                    True       OpenAI CLIP
GeoRSCLIP (RS5M)    ViT-H-14                    False      LAION-2B (``laion2b_s32b_b79k``)
SkyCLIP             ViT-B-32                    False      LAION-2B (``laion2b_e16``)
SkyCLIP             ViT-L-14                    True       OpenAI CLIP
FarSLIP             ViT-B-32, ViT-B-16          True       OpenAI CLIP; stage-2 files have a
                                                           Long-CLIP text tower (248 tokens:
                                                           ``text_cfg.context_length=248``)
RS-M-CLIP           xlm-roberta-base-ViT-B-32   False      LAION-5B (``laion5b_s13b_b90k``);
                                                           HF XLM-RoBERTa text tower
==================  ==========================  =========  ===================================

Sources: RemoteCLIP ``remoteclip_retrieval.py`` (``create_model_and_transforms(..., pretrained=
'openai')`` for RN50/ViT-B-32/ViT-L-14); RS5M ``inference/inference.py`` (``ViT-B/32`` with
``pretrained="openai"``, ``ViT-H/14`` with ``laion2b_s32b_b79k``); SkyScript ``README.md``
("we used ``openai`` for ``ViT-L-14`` and ``laion2b_e16`` for ``ViT-B-32``"); FarSLIP README
(``--force-quick-gelu`` in its commands, ViT-B-32 / ViT-B-16, Long-CLIP text for stage 2);
RS-M-CLIP model card (base model ``laion/CLIP-ViT-B-32-xlm-roberta-base-laion5B-s13B-b90k``).
The family configs (``configs/_base_/models/clip/``) carry these settings with their sources.
OpenAI's weights were trained with QuickGELU (``x * sigmoid(1.702 x)``); open_clip builds plain
``nn.GELU`` unless told (its ``*-quickgelu`` names or ``force_quick_gelu``), so ``quick_gelu``
must follow the checkpoint's origin, not the architecture name. It reaches the MLPs of ViT
image towers and of the CLIP text transformer; a ModifiedResNet (RN50) image tower uses ReLU
and an HF text tower its transformers config's activation, whatever the flag says.

HF text towers (``text_cfg.hf_model_name``, e.g. RS-M-CLIP's XLM-RoBERTa) are built from an
explicit transformers config instead of ``AutoConfig.from_pretrained`` (a network call): the
architecture facts of the known names are in :data:`HF_TEXT_CONFIGS`, and
``text_cfg.hf_config`` (an mmrs extension) overrides them, e.g. for tiny test towers.
A local directory holding a transformers ``config.json`` may be given as ``hf_model_name``
too.
"""
import copy
import dataclasses
import os.path as osp
import tempfile
from collections.abc import Mapping
from typing import Any

import torch.nn as nn

#: The architectures the remote-sensing families use (open_clip names); any other open_clip
#: built-in name works as well.
RS_ARCHITECTURES = ('RN50', 'ViT-B-32', 'ViT-B-16', 'ViT-L-14', 'ViT-H-14',
                    'xlm-roberta-base-ViT-B-32')

#: Architecture facts of the HF text towers open_clip names, as transformers config fields
#: (from the models' published ``config.json``), so no ``AutoConfig.from_pretrained`` call
#: (network) is needed.
HF_TEXT_CONFIGS: dict[str, dict[str, Any]] = {
    'xlm-roberta-base': dict(
        model_type='xlm-roberta', vocab_size=250002, hidden_size=768, num_hidden_layers=12,
        num_attention_heads=12, intermediate_size=3072, hidden_act='gelu',
        max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
        pad_token_id=1, bos_token_id=0, eos_token_id=2),
    'xlm-roberta-large': dict(
        model_type='xlm-roberta', vocab_size=250002, hidden_size=1024, num_hidden_layers=24,
        num_attention_heads=16, intermediate_size=4096, hidden_act='gelu',
        max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
        pad_token_id=1, bos_token_id=0, eos_token_id=2),
}

#: Default text context length of open_clip's tokenizers.
DEFAULT_CONTEXT_LENGTH = 77


def deep_merge(base: Mapping, overrides: Mapping | None) -> dict:
    """``base`` updated by ``overrides``, recursing into nested dicts (copies, no aliasing)."""
    merged = copy.deepcopy(dict(base))
    for key, value in (overrides or {}).items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def get_clip_config(model_name: str, model_cfg: Mapping | None = None,
                    quick_gelu: bool = False) -> dict:
    """open_clip's built-in config of ``model_name`` deep-merged with ``model_cfg``.

    Args:
        model_name: An open_clip built-in architecture (``open_clip.list_models()``).
        model_cfg: Overrides (``embed_dim``, ``vision_cfg={...}``, ``text_cfg={...}``, ...).
        quick_gelu: Use QuickGELU (also set when the config itself says so, as the
            ``*-quickgelu`` names do).

    Returns:
        The merged config (``quick_gelu`` resolved), ready for :func:`build_open_clip_model`.

    Raises:
        ValueError: Unknown architecture, a hub/local-dir schema (would read the network or
            another config), or override keys open_clip's tower configs do not have.
    """
    import open_clip
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg
    if not isinstance(model_name, str) or ':' in model_name:
        raise ValueError(f'model_name must be an open_clip built-in architecture such as '
                         f'{RS_ARCHITECTURES}, got {model_name!r} (hub and local-dir schemas '
                         'are not used: weights come from `checkpoint`)')
    base = open_clip.get_model_config(model_name.replace('/', '-'))
    if base is None:
        raise ValueError(f'unknown open_clip architecture {model_name!r}; available: '
                         f'{", ".join(open_clip.list_models())}')
    cfg = deep_merge(base, model_cfg)
    if 'multimodal_cfg' in cfg:
        raise ValueError(f'{model_name!r} is a CoCa (captioning) model, not a contrastive CLIP')
    cfg['quick_gelu'] = bool(quick_gelu or cfg.get('quick_gelu', False))
    for part, schema in (('vision_cfg', CLIPVisionCfg), ('text_cfg', CLIPTextCfg)):
        known = {f.name for f in dataclasses.fields(schema)}
        if part == 'text_cfg':
            known.add('hf_config')  # mmrs extension, see build_hf_text_config
        unknown = sorted(set(cfg.get(part, {})) - known)
        if unknown:
            raise ValueError(f'{model_name}: unknown {part} key(s) {unknown}; open_clip '
                             f'accepts {sorted(known)}')
    return cfg


def is_hf_text(cfg: Mapping) -> bool:
    """Whether a merged config has a HuggingFace text tower."""
    return bool(cfg.get('text_cfg', {}).get('hf_model_name'))


def build_hf_text_config(text_cfg: Mapping) -> Any:
    """The transformers config of an HF text tower, without any network access.

    ``text_cfg.hf_model_name`` is either a local directory with a ``config.json`` or one of
    :data:`HF_TEXT_CONFIGS`; ``text_cfg.hf_config`` overrides fields (``model_type`` may be
    given there for a name not in the table).

    Raises:
        ValueError: The name is neither a local directory nor a known name and no
            ``model_type`` is given.
    """
    from transformers import AutoConfig
    name = text_cfg['hf_model_name']
    overrides = dict(text_cfg.get('hf_config') or {})
    if osp.isdir(name):
        config = AutoConfig.from_pretrained(name, local_files_only=True)
        for key, value in overrides.items():
            setattr(config, key, value)
        return config
    facts = dict(HF_TEXT_CONFIGS.get(name, {}))
    facts.update(overrides)
    model_type = facts.pop('model_type', None)
    if model_type is None:
        raise ValueError(
            f'HF text tower {name!r}: its architecture is not known offline; give a local '
            f'directory with a transformers config.json as hf_model_name, or '
            f'text_cfg.hf_config with model_type and sizes (known names: '
            f'{sorted(HF_TEXT_CONFIGS)})')
    return AutoConfig.for_model(model_type, **facts)


def build_open_clip_model(model_name: str, model_cfg: Mapping | None = None,
                          quick_gelu: bool = False) -> nn.Module:
    """Build an open_clip ``CLIP`` / ``CustomTextCLIP`` with random weights, offline.

    Args:
        model_name: open_clip architecture (``RN50``, ``ViT-B-32``, ``ViT-B-16``,
            ``ViT-L-14``, ``ViT-H-14``, ``xlm-roberta-base-ViT-B-32``, ...).
        model_cfg: Overrides deep-merged into open_clip's config, e.g. tiny test towers
            ``dict(embed_dim=16, vision_cfg=dict(image_size=32, layers=2, width=32,
            patch_size=8, head_width=16), text_cfg=dict(context_length=16, width=32,
            heads=2, layers=2))``. For HF text towers ``text_cfg.hf_config`` overrides the
            transformers config (``dict(hidden_size=32, num_hidden_layers=2, ...)``).
        quick_gelu: QuickGELU activations (OpenAI-initialised checkpoints).

    Returns:
        ``open_clip.CLIP`` (built-in text transformer) or ``open_clip.CustomTextCLIP`` (HF
        text tower: ``model.text`` is an ``HFTextEncoder``), in train mode, on the CPU, with
        ``model.visual.preprocess_cfg`` set as open_clip's ``create_model`` sets it (size,
        OpenAI mean/std, bicubic, shortest-side resize).

    Raises:
        ValueError: see :func:`get_clip_config` and :func:`build_hf_text_config`.
    """
    from open_clip.model import CLIP as OpenCLIP
    from open_clip.model import CustomTextCLIP, set_model_preprocess_cfg
    from open_clip.transform import PreprocessCfg
    cfg = get_clip_config(model_name, model_cfg, quick_gelu)
    custom_text = bool(cfg.pop('custom_text', False)) or is_hf_text(cfg)
    vision_cfg = cfg['vision_cfg']
    if vision_cfg.get('timm_model_name'):
        vision_cfg['timm_model_pretrained'] = False  # weights come from the checkpoint
    text_cfg = cfg['text_cfg']
    hf_config = text_cfg.pop('hf_config', None)
    if not is_hf_text(cfg):
        model = (CustomTextCLIP if custom_text else OpenCLIP)(**cfg)
    else:
        # open_clip's HFTextEncoder reads the config with AutoConfig.from_pretrained(name) and,
        # with hf_model_pretrained=False, builds the transformer with AutoModel.from_config and
        # the pooling layer only for a CLS pooler, which is the module layout its
        # checkpoints have. Pointing it at a local folder holding our explicit config keeps
        # that exact construction path and stays offline.
        config = build_hf_text_config(dict(text_cfg, hf_config=hf_config))
        with tempfile.TemporaryDirectory(prefix='mmrs-hf-text-') as folder:
            config.save_pretrained(folder)
            model = CustomTextCLIP(**dict(cfg, text_cfg=dict(
                text_cfg, hf_model_name=folder, hf_model_pretrained=False)))
        model.text.config._name_or_path = text_cfg['hf_model_name']
    preprocess = dataclasses.asdict(PreprocessCfg())
    preprocess['size'] = model.visual.image_size
    set_model_preprocess_cfg(model, preprocess)
    return model


def text_context_length(model: nn.Module, cfg: Mapping | None = None) -> int:
    """Token sequence length the model's tokenizer produces.

    The CLIP text transformer fixes it (``model.context_length``); an HF text tower accepts
    up to ``max_position_embeddings`` but open_clip tokenizes to ``text_cfg.context_length``
    (default 77), which is what its checkpoints were trained with.
    """
    if cfg is not None and is_hf_text(cfg):
        return int(cfg['text_cfg'].get('context_length', DEFAULT_CONTEXT_LENGTH))
    return int(model.context_length)
