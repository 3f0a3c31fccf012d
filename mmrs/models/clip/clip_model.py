"""``CLIP``: the remote-sensing CLIP family (RemoteCLIP, GeoRSCLIP, SkyCLIP, FarSLIP, RS-M-CLIP)
as one mmengine model around an open_clip model.

The towers are open_clip's own (:func:`mmrs.models.clip.towers.build_open_clip_model`), so
embeddings equal what each family's reference code computes with open_clip once the same
weights are loaded; family checkpoints are converted to open_clip's keys by
:mod:`mmrs.models.clip.layouts` and loaded strictly. Which architecture and activation each
family needs is tabulated in :mod:`mmrs.models.clip.towers` (OpenAI-initialised models:
``quick_gelu=True``).

Modes of :meth:`CLIP.forward`:

- ``'tensor'``: L2-normalised image embeddings ``(B, D)``;
- ``'loss'``: the contrastive loss of each image with its caption (``data_samples[i].text``),
  ``dict(loss_contrastive=..., logit_scale=...)``;
- ``'predict'``: each data sample gets ``image_embedding`` ``(D,)`` and, when it carries
  ``captions`` (list of str), ``text_embeddings`` ``(n, D)``, all L2-normalised (what the
  retrieval metric and zero-shot classifier consume).
"""
import math
from collections.abc import Sequence
from typing import Any

import torch
from mmengine.model import BaseModel
from torch import Tensor

from mmrs.registry import MODELS
from .tokenizers import Tokenizer, build_tokenizer
from .towers import build_open_clip_model, get_clip_config, is_hf_text, text_context_length

#: OpenAI CLIP's image normalisation (open_clip ``OPENAI_DATASET_MEAN/STD``), used by every
#: family of this package.
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

#: open_clip's training loop clamps ``logit_scale`` to ``[0, ln 100]`` after every step.
MAX_LOGIT_SCALE = math.log(100)


def default_data_preprocessor() -> dict:
    """mmpretrain's ``ClsDataPreprocessor`` with OpenAI CLIP's mean/std on a 0–255 scale."""
    return dict(type='mmpretrain.ClsDataPreprocessor',
                mean=[255 * m for m in OPENAI_CLIP_MEAN],
                std=[255 * s for s in OPENAI_CLIP_STD], to_rgb=True)


@MODELS.register_module()
class CLIP(BaseModel):
    """A contrastive image–text model built on open_clip, config-driven and offline.

    Args:
        model_name: open_clip architecture (``RN50``, ``ViT-B-32``, ``ViT-B-16``,
            ``ViT-L-14``, ``ViT-H-14``, ``xlm-roberta-base-ViT-B-32``, ...).
        model_cfg: Overrides deep-merged into open_clip's config (``embed_dim``,
            ``vision_cfg``, ``text_cfg``; ``text_cfg.hf_config`` for HF text towers).
        quick_gelu: QuickGELU activations; must match the checkpoint (True for
            OpenAI-initialised models).
        checkpoint: Local file or URL of the weights, read through
            :func:`mmrs.models.clip.layouts.load_clip_state_dict` and loaded strictly.
        checkpoint_layout: The checkpoint's key layout (``'auto'`` detects it).
        tokenizer: ``dict(type='open_clip', name=...)`` (default: the architecture's) or
            ``dict(type='hf', path=LOCAL_DIR)``; see :mod:`mmrs.models.clip.tokenizers`.
        loss: Loss config built from ``MODELS`` (default ``CLIPContrastiveLoss``), called as
            ``loss(image_emb, text_emb, logit_scale)`` with normalised embeddings and the
            *exponentiated* (clamped) scale, as open_clip's ``ClipLoss``. ``None``: no loss
            (inference only).
        tuning: Keyword arguments of :func:`mmrs.models.clip.tuning.apply_tuning`, applied
            after the weights are loaded (freezing, LoRA).
        data_preprocessor: Default :func:`default_data_preprocessor`.
        init_cfg: mmengine initialisation config.

    Attributes:
        clip: The open_clip model (``open_clip.CLIP`` or ``CustomTextCLIP``); its
            ``state_dict`` keys are open_clip's canonical ones.
        model_name: The architecture.
        embed_dim: Embedding size ``D``.
        image_size: The image tower's input size ``(H, W)``.
        context_length: Token sequence length of :meth:`tokenize`.
        checkpoint_layout: The layout the checkpoint was read as (``None`` without one).
    """

    def __init__(self, model_name: str = 'ViT-B-32', model_cfg: dict | None = None,
                 quick_gelu: bool = False, checkpoint: str | None = None,
                 checkpoint_layout: str = 'auto', tokenizer: dict | None = None,
                 loss: dict | None = dict(type='CLIPContrastiveLoss'),
                 tuning: dict | None = None, data_preprocessor: dict | None = None,
                 init_cfg: dict | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor or default_data_preprocessor(),
                         init_cfg=init_cfg)
        cfg = get_clip_config(model_name, model_cfg, quick_gelu)
        self.model_name = model_name
        self.quick_gelu = cfg['quick_gelu']
        self.clip = build_open_clip_model(model_name, model_cfg, quick_gelu)
        self.embed_dim = int(cfg['embed_dim'])
        size = getattr(self.clip.visual, 'image_size', None) or cfg['vision_cfg']['image_size']
        self.image_size: tuple[int, int] = (
            (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size))
        self.context_length = text_context_length(self.clip, cfg)
        self.tokenizer_cfg = tokenizer
        self._hf_text = is_hf_text(cfg)
        self._tokenizer = None  # built on first use: image-only use needs no tokenizer files
        self.loss_module = MODELS.build(loss) if loss is not None else None
        self.checkpoint_layout: str | None = None
        if checkpoint is not None:
            self.load_checkpoint(checkpoint, checkpoint_layout)
        if tuning:
            from .tuning import apply_tuning
            apply_tuning(self, **tuning)

    # ------------------------------------------------------------------ weights
    def load_checkpoint(self, source: str, layout: str = 'auto') -> str:
        """Load a family checkpoint into :attr:`clip`, strictly.

        :func:`~mmrs.models.clip.layouts.load_clip_state_dict` reads and converts the file
        and checks it against the model (its error lists the keys and the architecture
        each side implies). Non-persistent buffers that older checkpoints saved
        (``position_ids`` of HF text towers, ``attn_mask``) are derived from the
        architecture, not learned, and are ignored; every other missing or unexpected key
        is an error.

        Returns:
            The layout the file was read as.

        Raises:
            CLIPCheckpointError (a ValueError), RuntimeError: Keys or shapes do not fit the
                architecture (names the file, the layout and the keys).
        """
        from .layouts import load_clip_state_dict
        state, detected = load_clip_state_dict(source, layout, model=self.clip)
        state = dict(state)
        if state and all(k.startswith('clip.') for k in state):  # an mmrs runner checkpoint
            state = {k[len('clip.'):]: v for k, v in state.items()}
        persistent = set(self.clip.state_dict())
        derived = {n for n, _ in self.clip.named_buffers()} - persistent
        state = {k: v for k, v in state.items() if k not in derived}
        missing = sorted(persistent - set(state))
        unexpected = sorted(set(state) - persistent)
        where = f'checkpoint {source!r} (layout {detected!r})'
        if missing or unexpected:
            raise RuntimeError(
                f'{where} does not fit {self.model_name} (quick_gelu={self.quick_gelu}): '
                f'{len(missing)} missing key(s) {_head(missing)}, {len(unexpected)} '
                f'unexpected key(s) {_head(unexpected)}')
        try:
            self.clip.load_state_dict(state, strict=True)
        except RuntimeError as err:  # shape mismatches
            raise RuntimeError(f'{where} does not fit {self.model_name}: {err}') from err
        self.checkpoint_layout = detected
        return detected

    # ------------------------------------------------------------------ encoders
    @property
    def logit_scale(self) -> torch.nn.Parameter:
        """open_clip's ``logit_scale``: log of the inverse softmax temperature."""
        return self.clip.logit_scale

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return self.clip.logit_scale.device

    @property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer callable (built on first use from ``tokenizer``)."""
        if self._tokenizer is None:
            self._tokenizer = build_tokenizer(self.tokenizer_cfg, self.model_name,
                                              self.context_length, hf_text=self._hf_text)
        return self._tokenizer

    def tokenize(self, texts: Sequence[str] | str) -> torch.LongTensor:
        """Token ids ``(N, context_length)`` of ``texts``, on the model's device."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise TypeError(f'texts must be strings; item(s) {bad[:5]} are not')
        return self.tokenizer(texts).long().to(self.device)

    def encode_image(self, images: Tensor, normalize: bool = True) -> Tensor:
        """Embeddings ``(B, D)`` of normalised images ``(B, C, H, W)``."""
        return self.clip.encode_image(images, normalize=normalize)

    def encode_text(self, tokens: Tensor, normalize: bool = True) -> Tensor:
        """Embeddings ``(N, D)`` of token ids ``(N, L)``."""
        return self.clip.encode_text(tokens, normalize=normalize)

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256,
                     normalize: bool = True) -> Tensor:
        """Tokenize and embed ``texts`` in batches of ``batch_size``: ``(N, D)``."""
        texts = list(texts)
        if not texts:
            return self.logit_scale.new_zeros((0, self.embed_dim))
        chunks = [self.encode_text(self.tokenize(texts[i:i + batch_size]), normalize)
                  for i in range(0, len(texts), batch_size)]
        return torch.cat(chunks)

    # ------------------------------------------------------------------ modes
    def forward(self, inputs: Tensor, data_samples: list | None = None,
                mode: str = 'tensor') -> Any:
        """See the module docstring for the three modes."""
        if mode == 'tensor':
            return self.encode_image(inputs)
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', got {mode!r}")

    def loss(self, inputs: Tensor, data_samples: list) -> dict[str, Tensor]:
        """Contrastive loss of each image with its caption ``data_samples[i].text``.

        Returns:
            ``{loss_name: loss, 'logit_scale': s}``: the loss under the loss module's
            ``loss_name`` (default ``'loss_contrastive'``) and the scale ``s`` it used
            (``exp`` of :attr:`logit_scale` clamped to ``[0, ln 100]``), detached, for logs.
        """
        if self.loss_module is None:
            raise RuntimeError('CLIP was built with loss=None; it cannot compute a loss')
        if data_samples is None or len(data_samples) != len(inputs):
            raise ValueError(f'mode="loss" needs one data sample (with a `text` caption) per '
                             f'image: got {0 if data_samples is None else len(data_samples)} '
                             f'for {len(inputs)} images')
        texts = []
        for i, sample in enumerate(data_samples):
            text = sample.get('text', None)
            if not isinstance(text, str):
                raise ValueError(
                    f'data sample {i} has no caption string in field `text` (got '
                    f"{type(text).__name__}); pack it with PackInputs(algorithm_keys=['text'])"
                    ' after RandomCaption')
            texts.append(text)
        image_emb = self.encode_image(inputs)
        text_emb = self.encode_text(self.tokenize(texts))
        scale = self.clip.logit_scale.clamp(0, MAX_LOGIT_SCALE).exp()
        loss = self.loss_module(image_emb, text_emb, scale)
        name = getattr(self.loss_module, 'loss_name', 'loss_contrastive')
        return {name: loss, 'logit_scale': scale.detach()}

    @torch.no_grad()
    def predict(self, inputs: Tensor, data_samples: list | None = None) -> list:
        """Set ``image_embedding`` (and ``text_embeddings`` for ``captions``) per sample."""
        from mmpretrain.structures import DataSample
        image_emb = self.encode_image(inputs)
        if data_samples is None:
            data_samples = [DataSample() for _ in range(len(inputs))]
        captions = [sample.get('captions', None) for sample in data_samples]
        flat = [c for caps in captions if caps is not None for c in caps]
        text_emb = self.encode_texts(flat) if flat else None
        start = 0
        for sample, emb, caps in zip(data_samples, image_emb, captions):
            sample.image_embedding = emb
            if caps is not None:
                sample.text_embeddings = text_emb[start:start + len(caps)] if caps else \
                    image_emb.new_zeros((0, self.embed_dim))
                start += len(caps)
        return data_samples


def _head(keys: list[str], n: int = 8) -> str:
    """The first ``n`` keys, for error messages."""
    return str(keys[:n])[:-1] + (', ...]' if len(keys) > n else ']')


__all__ = ['CLIP', 'default_data_preprocessor', 'OPENAI_CLIP_MEAN', 'OPENAI_CLIP_STD']
