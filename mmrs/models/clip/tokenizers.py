"""Text tokenizers for :class:`mmrs.models.clip.CLIP`, built from a config dict, offline.

- ``dict(type='open_clip', name='ViT-B-32')``: open_clip's own tokenizer for that
  architecture (``open_clip.get_tokenizer``): the byte-pair ``SimpleTokenizer`` whose
  vocabulary ships inside open_clip, so nothing is downloaded. ``name`` defaults to the
  model's architecture.
- ``dict(type='hf', path=LOCAL_DIR)``: a HuggingFace tokenizer saved in a local directory
  (``AutoTokenizer.from_pretrained(path, local_files_only=True)``), wrapped in open_clip's
  ``HFTokenizer`` so padding/truncation/cleaning match what open_clip trained with
  (RS-M-CLIP's XLM-RoBERTa tokenizer). Extra keys (``clean``, ``strip_sep_token``,
  ``language``) go to ``HFTokenizer``.

``context_length`` (either type) defaults to the model's.
"""
import os.path as osp
from collections.abc import Callable, Sequence
from typing import Any

import torch

#: ``tokenizer`` types :func:`build_tokenizer` accepts.
TOKENIZER_TYPES = ('open_clip', 'hf')

Tokenizer = Callable[[Sequence[str]], torch.Tensor]


def build_tokenizer(cfg: dict | None, model_name: str, context_length: int,
                    hf_text: bool = False) -> Tokenizer:
    """Build a tokenizer callable ``texts -> LongTensor (N, context_length)``.

    Args:
        cfg: ``dict(type='open_clip', ...)`` or ``dict(type='hf', path=...)``; ``None``
            means open_clip's tokenizer of ``model_name``.
        model_name: The model's open_clip architecture (default ``name``).
        context_length: The model's token sequence length (default ``context_length``).
        hf_text: Whether the model has an HF text tower (then ``type='hf'`` is required:
            open_clip would download the tokenizer).

    Raises:
        ValueError: Unknown type, missing ``path``, or an HF text tower without ``type='hf'``.
        FileNotFoundError: ``path`` is not a directory, or holds no tokenizer.
    """
    cfg = dict(cfg or dict(type='open_clip'))
    kind = cfg.pop('type', 'open_clip')
    if kind not in TOKENIZER_TYPES:
        raise ValueError(f'tokenizer type must be one of {TOKENIZER_TYPES}, got {kind!r}')
    length = int(cfg.pop('context_length', None) or context_length)
    if kind == 'open_clip':
        if hf_text:
            raise ValueError(
                f'{model_name} has a HuggingFace text tower: its tokenizer must come from a '
                "local directory, tokenizer=dict(type='hf', path=LOCAL_DIR) (open_clip "
                'would download it)')
        return _open_clip_tokenizer(cfg.pop('name', model_name), length, cfg)
    path = cfg.pop('path', None)
    if not path:
        raise ValueError("tokenizer=dict(type='hf', ...) needs path=LOCAL_DIR, a directory "
                         'saved with save_pretrained (tokenizer.json / vocabulary files)')
    return _hf_tokenizer(str(path), length, cfg)


def _open_clip_tokenizer(name: str, context_length: int, kwargs: dict[str, Any]) -> Tokenizer:
    import open_clip
    config = open_clip.get_model_config(name)
    if config is None:
        raise ValueError(f'unknown open_clip architecture {name!r} for the tokenizer')
    if config.get('text_cfg', {}).get('hf_tokenizer_name'):
        raise ValueError(f'{name} uses a HuggingFace tokenizer; give '
                         "tokenizer=dict(type='hf', path=LOCAL_DIR)")
    return open_clip.get_tokenizer(name, context_length=context_length, **kwargs)


def _hf_tokenizer(path: str, context_length: int, kwargs: dict[str, Any]) -> Tokenizer:
    from open_clip.tokenizer import HFTokenizer
    if not osp.isdir(path):
        raise FileNotFoundError(f'HF tokenizer directory not found: {path!r} (tokenizers '
                                'are read from local directories only)')
    try:
        return HFTokenizer(path, context_length=context_length, local_files_only=True,
                           **kwargs)
    except (OSError, ValueError) as err:
        raise FileNotFoundError(f'cannot load a HuggingFace tokenizer from {path!r}: '
                                f'{err}') from err
