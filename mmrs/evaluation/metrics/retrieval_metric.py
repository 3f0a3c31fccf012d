"""Image–text retrieval metric (R@k both ways) under protocols A and B.

The arithmetic is in :mod:`mmrs.evaluation.retrieval`; this class only gathers the
embeddings the CLIP model writes into each data sample in ``predict`` mode and delegates.
See ``docs/retrieval_protocols.md`` for what each protocol computes and where it comes from.
"""
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from mmrs.registry import METRICS

from ..retrieval import PROTOCOLS, TIE_MODES, ArrayLike, retrieval_recall


def _get(sample: Any, key: str) -> Any:
    """Field ``key`` of a data sample given as dict (evaluator) or ``DataSample``."""
    # both ``dict.get`` and ``BaseDataElement.get`` (data and metainfo fields) apply
    return sample.get(key)


def _describe(sample: Any) -> str:
    for key in ('img_path', 'img_id', 'sample_idx'):
        value = _get(sample, key)
        if value is not None:
            return f'{key}={value}'
    return 'unknown sample'


@METRICS.register_module()
class RetrievalMetric(BaseMetric):
    """Image→text and text→image recall at ``ks`` under protocols ``'A'`` and/or ``'B'``.

    Each data sample must carry (see the CLIP model's ``predict`` mode):

    - ``image_embedding``: ``(D,)`` image embedding (L2-normalised by the model);
    - ``text_embeddings``: ``(n, D)`` embeddings of the image's captions;
    - ``captions``: the ``n`` caption strings that were encoded (protocol B merges
      identical strings);
    - ``img_id``: the image's identifier (Karpathy ``imgid``); a repeated id is counted once.

    ``img_path`` (metainfo) is used, when every sample has it, to order the image gallery by
    path as both reference scripts do (``np.unique`` of file names, pandas ``groupby`` of
    paths), which only matters for how exact ties are broken. Images without captions are
    left out, as the references (which list images through their captions) never see them.
    Scores are cosine similarities ``image_embedding @ text_embeddings.T`` in float32.

    Keys (percentages), for each protocol ``P``: ``P/txt2img_R@k``, ``P/img2txt_R@k``,
    ``P/txt2img_mean``, ``P/img2txt_mean``, ``P/mean_recall`` (mean of all ``2 * len(ks)``
    recalls: RemoteCLIP's "mean recall"), ``P/num_images``, ``P/num_texts``.

    Args:
        protocols: Subset of ``('A', 'B')``. Defaults to both.
        ks: Recall cut-offs. Defaults to ``(1, 5, 10)``.
        ties: Tie policy (``'index'``, ``'optimistic'``, ``'pessimistic'``), see
            :func:`mmrs.evaluation.retrieval.best_positive_rank`.
        collect_device: Device used to gather results across processes.
        prefix: Prefix of every key. Defaults to ``'retrieval'``.
        collect_dir: Directory for cross-process collection with ``collect_device='cpu'``.
    """

    default_prefix = 'retrieval'

    def __init__(self, protocols: Sequence[str] = PROTOCOLS, ks: Sequence[int] = (1, 5, 10),
                 ties: str = 'index', collect_device: str = 'cpu', prefix: str | None = None,
                 collect_dir: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        protocols = (protocols,) if isinstance(protocols, str) else tuple(protocols)
        if not protocols or any(p not in PROTOCOLS for p in protocols):
            raise ValueError(f'protocols must be a non-empty subset of {PROTOCOLS}, '
                             f'got {protocols}')
        if ties not in TIE_MODES:
            raise ValueError(f'ties must be one of {TIE_MODES}, got {ties!r}')
        if not ks or any(int(k) < 1 for k in ks):
            raise ValueError(f'ks must be positive integers, got {tuple(ks)}')
        self.protocols = protocols
        self.ks = tuple(int(k) for k in ks)
        self.ties = ties

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Store each sample's embeddings (on CPU), captions, id and path."""
        for sample in data_samples:
            where = _describe(sample)
            image = _get(sample, 'image_embedding')
            texts = _get(sample, 'text_embeddings')
            captions = _get(sample, 'captions')
            img_id = _get(sample, 'img_id')
            missing = [name for name, value in (('image_embedding', image),
                                                ('text_embeddings', texts),
                                                ('captions', captions), ('img_id', img_id))
                       if value is None]
            if missing:
                raise KeyError(f'{where}: data sample lacks {missing}; run the model in '
                               "'predict' mode and pack captions and img_id "
                               "(PackInputs(algorithm_keys=['captions', 'img_id']))")
            image = torch.as_tensor(image).detach().float().cpu().reshape(-1)
            texts = torch.as_tensor(texts).detach().float().cpu()
            captions = [captions] if isinstance(captions, str) else list(captions)
            if texts.ndim == 1 and len(captions) == 1:
                texts = texts[None]
            if texts.ndim != 2 or texts.shape[0] != len(captions):
                raise ValueError(f'{where}: text_embeddings has shape {tuple(texts.shape)} '
                                 f'for {len(captions)} captions')
            if texts.shape[0] and texts.shape[1] != image.shape[0]:
                raise ValueError(f'{where}: text embeddings have dim {texts.shape[1]}, the '
                                 f'image embedding {image.shape[0]}')
            if isinstance(img_id, torch.Tensor):
                img_id = img_id.item()
            self.results.append(dict(image=image, texts=texts, captions=captions,
                                     img_id=img_id, img_path=_get(sample, 'img_path')))

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Assemble the galleries from all samples and score every protocol."""
        logger = MMLogger.get_current_instance()
        unique: dict[Any, dict] = {}
        for r in results:
            unique.setdefault(r['img_id'], r)
        if len(unique) < len(results):
            logger.warning(f'RetrievalMetric: {len(results) - len(unique)} samples repeat an '
                           'img_id and were counted once')
        samples = [r for r in unique.values() if r['captions']]
        if len(samples) < len(unique):
            logger.warning(f'RetrievalMetric: {len(unique) - len(samples)} images have no '
                           'caption and were left out')
        if not samples:
            raise ValueError('RetrievalMetric: no image with captions was evaluated')
        if all(r['img_path'] is not None for r in samples):
            samples.sort(key=lambda r: str(r['img_path']))
        image_emb = torch.stack([r['image'] for r in samples])
        text_emb = torch.cat([r['texts'] for r in samples])
        text_image = np.concatenate(
            [np.full(len(r['captions']), i, dtype=np.int64) for i, r in enumerate(samples)])
        captions = [c for r in samples for c in r['captions']]
        return self.compute_from_similarity(image_emb @ text_emb.T, text_image, captions)

    def compute_from_similarity(self, similarity: ArrayLike, text_image: ArrayLike,
                                captions: Sequence[str] | None = None) -> dict[str, float]:
        """Score a ready ``(num_images, num_texts)`` similarity matrix (no prefix added).

        Args:
            similarity: Image–caption scores, images unique.
            text_image: Image index of every caption (column).
            captions: Caption strings of the columns (needed by protocol B).
        """
        return retrieval_recall(similarity, text_image, captions, protocols=self.protocols,
                                ks=self.ks, ties=self.ties)
