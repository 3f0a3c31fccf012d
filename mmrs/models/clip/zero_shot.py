"""Zero-shot scene classification with a CLIP model: class prompts become the classifier.

For each class, every template is filled with the class name and embedded by the text tower;
the template embeddings are averaged into one unit vector per class (the "prompt ensemble"
of Radford et al. 2021). An image is scored by the cosine of its embedding with each class
vector, times a logit scale, and the softmax of those logits is ``pred_score``.

Two averaging rules exist in the families' own code (see :mod:`mmrs.models.clip.prompts`,
:data:`~mmrs.models.clip.prompts.PAPER_ENSEMBLE`):

- ``'normalized_mean'``: mean of the *normalised* template embeddings, renormalised (OpenAI
  CLIP's notebook; open_clip ``build_zero_shot_classifier``, used by SkyScript and FarSLIP);
- ``'raw_mean'``: mean of the *raw* embeddings, normalised (ITRA ``zero_shot_classifier``,
  RemoteCLIP's evaluation, and RS5M ``inference_tool.py``, GeoRSCLIP's).

The text classifier is built once, on first use, and cached; it is rebuilt when the class
names or templates change (:meth:`CLIPZeroShotClassifier.set_class_names`) and dropped when
weights are loaded into the model.
"""
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor, nn

from mmrs.registry import MODELS
from .prompts import fill_templates, get_templates

ENSEMBLES = ('normalized_mean', 'raw_mean')


def resolve_class_names(class_names: Sequence[str] | str | dict) -> list[str]:
    """Class prompt strings from a list, a dataset type name or ``dict(dataset=..., style=...)``
    (see :func:`mmrs.datasets.scene_classification.scene_class_names`)."""
    if isinstance(class_names, (str, dict)):
        from mmrs.datasets.scene_classification import scene_class_names
        spec = dict(dataset=class_names) if isinstance(class_names, str) else dict(class_names)
        return scene_class_names(**spec)
    names = [str(n) for n in class_names]
    if not names:
        raise ValueError('class_names must not be empty')
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f'class_names repeat {dupes[:5]}: classes would be indistinguishable')
    return names


@torch.no_grad()
def build_text_classifier(clip: nn.Module, class_names: Sequence[str], templates: Sequence[str],
                          ensemble: str = 'normalized_mean', batch_size: int = 256) -> Tensor:
    """Unit class vectors ``(C, D)`` from prompts, for a model with ``encode_texts``.

    Args:
        clip: Anything with ``encode_texts(texts, batch_size=..., normalize=...) -> (N, D)``
            (:class:`mmrs.models.clip.CLIP`).
        class_names: ``C`` class strings.
        templates: ``T`` templates with one ``{}`` each.
        ensemble: ``'normalized_mean'`` or ``'raw_mean'`` (module docstring).
        batch_size: Texts per text-tower batch.
    """
    if ensemble not in ENSEMBLES:
        raise ValueError(f'ensemble must be one of {ENSEMBLES}, got {ensemble!r}')
    templates = list(templates)
    texts = [t for name in class_names for t in fill_templates(templates, name)]
    emb = clip.encode_texts(texts, batch_size=batch_size,
                            normalize=ensemble == 'normalized_mean').float()
    emb = emb.reshape(len(class_names), len(templates), -1)
    return F.normalize(emb.mean(dim=1), dim=-1)


@MODELS.register_module()
class CLIPZeroShotClassifier(BaseModel):
    """Classify images into named classes with a CLIP model and prompt templates.

    Args:
        clip: The CLIP model: a config (``dict(type='CLIP', ...)``, built from ``MODELS``) or
            a module with ``encode_image``, ``encode_texts``, ``logit_scale`` and a
            ``data_preprocessor``.
        class_names: Class prompt strings in label order; a registered dataset type name
            (``'RESISC45Dataset'``: its display names) or ``dict(dataset=..., style=...)``
            (``style='remoteclip'`` / ``'georsclip'`` for those papers' spellings). ``None``:
            set them later with :meth:`set_class_names`.
        templates: A template set name of :data:`mmrs.models.clip.prompts.TEMPLATE_SETS` or a
            list of templates.
        ensemble: ``'normalized_mean'`` (OpenAI CLIP, open_clip) or ``'raw_mean'`` (ITRA,
            RS5M); see the module docstring.
        logit_scale: Fixed logit scale; ``None`` uses the model's learned ``exp(logit_scale)``
            (the family papers score with a fixed 100; the ranking is the same either way).
        text_batch_size: Prompts per text-tower batch when building the classifier.
        data_preprocessor: Default: the CLIP model's own (its mean/std and channel order).
        init_cfg: mmengine initialisation config.
    """

    def __init__(self, clip: dict | nn.Module,
                 class_names: Sequence[str] | str | dict | None = None,
                 templates: str | Sequence[str] = 'remoteclip_scene',
                 ensemble: str = 'normalized_mean', logit_scale: float | None = None,
                 text_batch_size: int = 256, data_preprocessor: dict | None = None,
                 init_cfg: dict | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.clip = MODELS.build(clip) if isinstance(clip, dict) else clip
        for attr in ('encode_image', 'encode_texts', 'logit_scale'):
            if not hasattr(self.clip, attr):
                raise TypeError(f'clip model {type(self.clip).__name__} has no {attr!r}')
        if data_preprocessor is None and isinstance(
                getattr(self.clip, 'data_preprocessor', None), nn.Module):
            self.data_preprocessor = self.clip.data_preprocessor
        if ensemble not in ENSEMBLES:
            raise ValueError(f'ensemble must be one of {ENSEMBLES}, got {ensemble!r}')
        if logit_scale is not None and not float(logit_scale) > 0:
            raise ValueError(f'logit_scale must be > 0, got {logit_scale}')
        self.templates = get_templates(templates)
        self.ensemble = ensemble
        self.fixed_logit_scale = None if logit_scale is None else float(logit_scale)
        self.text_batch_size = int(text_batch_size)
        self.class_names: list[str] | None = None
        self._classifier: Tensor | None = None
        self._classifier_key: tuple | None = None
        if class_names is not None:
            self.set_class_names(class_names)
        # Loaded weights make a cached classifier stale.
        self._register_load_state_dict_pre_hook(self._drop_cache_hook)

    # ------------------------------------------------------------------ classifier
    def _drop_cache_hook(self, *args, **kwargs) -> None:
        self._classifier = None

    def set_class_names(self, class_names: Sequence[str] | str | dict,
                        templates: str | Sequence[str] | None = None) -> None:
        """Change the classes (and optionally the templates); the classifier is rebuilt
        on next use."""
        self.class_names = resolve_class_names(class_names)
        if templates is not None:
            self.templates = get_templates(templates)
        self._classifier = None

    def text_classifier(self) -> Tensor:
        """The cached unit class vectors ``(C, D)`` (built on first call)."""
        if self.class_names is None:
            raise RuntimeError('CLIPZeroShotClassifier has no class names: give class_names= '
                               'in the config or call set_class_names()')
        key = (tuple(self.class_names), self.templates, self.ensemble)
        if self._classifier is None or self._classifier_key != key:
            was_training = self.clip.training
            self.clip.eval()
            self._classifier = build_text_classifier(
                self.clip, self.class_names, self.templates, self.ensemble,
                self.text_batch_size)
            self.clip.train(was_training)
            self._classifier_key = key
        return self._classifier

    def logit_scale_value(self) -> Tensor | float:
        """The scale the cosines are multiplied by."""
        if self.fixed_logit_scale is not None:
            return self.fixed_logit_scale
        return self.clip.logit_scale.detach().float().exp()

    # ------------------------------------------------------------------ modes
    @torch.no_grad()
    def logits(self, inputs: Tensor) -> Tensor:
        """``logit_scale * cos(image, class)``: ``(B, C)`` for normalised images."""
        image = F.normalize(self.clip.encode_image(inputs).float(), dim=-1)
        weights = self.text_classifier().to(image.device)
        return self.logit_scale_value() * image @ weights.t()

    def forward(self, inputs: Tensor, data_samples: list | None = None,
                mode: str = 'tensor') -> Any:
        """``'tensor'``: logits ``(B, C)``; ``'predict'``: data samples with ``pred_score``
        and ``pred_label``; ``'loss'`` is not available (nothing here is trained)."""
        if mode == 'tensor':
            return self.logits(inputs)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'loss':
            raise RuntimeError('CLIPZeroShotClassifier only predicts; fine-tune the CLIP model '
                               "itself (type='CLIP', mode='loss')")
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', got {mode!r}")

    def predict(self, inputs: Tensor, data_samples: list | None = None) -> list:
        """Softmax scores ``pred_score`` ``(C,)`` and ``pred_label`` per sample."""
        from mmpretrain.structures import DataSample
        scores = self.logits(inputs).softmax(dim=-1)
        labels = scores.argmax(dim=-1)
        if data_samples is None:
            data_samples = [DataSample() for _ in range(len(inputs))]
        for sample, score, label in zip(data_samples, scores, labels):
            sample.set_pred_score(score).set_pred_label(label)
        return data_samples
