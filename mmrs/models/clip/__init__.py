"""Remote-sensing CLIP family on open_clip (RemoteCLIP, GeoRSCLIP, SkyCLIP, FarSLIP, RS-M-CLIP).

- :mod:`~mmrs.models.clip.towers`: open_clip models from an architecture name plus
  overrides, offline (:func:`build_open_clip_model`); which family uses which architecture
  and activation;
- :mod:`~mmrs.models.clip.tokenizers`: open_clip / local HuggingFace tokenizers;
- :mod:`~mmrs.models.clip.clip_model`: the registered :class:`CLIP` model;
- :mod:`~mmrs.models.clip.layouts`: the families' checkpoint files as open_clip state dicts;
- :mod:`~mmrs.models.clip.tuning`: freezing and LoRA;
- :mod:`~mmrs.models.clip.zero_shot`, :mod:`~mmrs.models.clip.prompts`: zero-shot
  scene classification.
"""
from .clip_model import CLIP, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, default_data_preprocessor
from .layouts import LAYOUTS, detect_layout, load_clip_state_dict  # noqa: F401
from .tokenizers import build_tokenizer
from .towers import build_open_clip_model, get_clip_config
from .tuning import apply_tuning, merge_lora  # noqa: F401
from .zero_shot import CLIPZeroShotClassifier  # noqa: F401

__all__ = ['CLIP', 'CLIPZeroShotClassifier', 'LAYOUTS', 'OPENAI_CLIP_MEAN', 'OPENAI_CLIP_STD',
           'build_open_clip_model', 'build_tokenizer', 'default_data_preprocessor',
           'detect_layout', 'get_clip_config', 'load_clip_state_dict']
