"""Image–text retrieval recall on similarity matrices: the two protocols RS-CLIP papers use.

Pure functions (numpy / torch in, plain Python numbers out), no mmengine, so that
:class:`~mmrs.evaluation.metrics.RetrievalMetric`, scripts and tests compute exactly the same
numbers. ``docs/retrieval_protocols.md`` describes both protocols side by side with their
sources; in short:

**Protocol A** (LAION-AI/CLIP_benchmark ``clip_benchmark/metrics/zeroshot_retrieval.py``,
used as is by ChenDelong1999/RemoteCLIP ``remoteclip_retrieval.py`` and om-ai-lab/RS5M
``inference/inference_tool.py``): every test image once, every caption as distributed (5 per
image, duplicate strings kept, each positive for its own image only). Text→image: a caption
hits at ``k`` when its image is among its ``k`` best images. Image→text: an image hits when
*any* of its captions is among its ``k`` best captions. R@1/5/10 both ways and their mean
("mean recall", the mean of the 6 numbers).

**Protocol B** (wangzhecheng/SkyScript ``cross_modal_retrieval.ipynb``, NJU-LHRS/FarSLIP
``tests/test_retrieval.py``): unique images and unique caption *strings* (identical strings
are merged into one text that is positive for every image it describes); a query hits when any
of its positives is among its ``k`` best. Recall is averaged over unique texts (text→image)
and unique images (image→text). FarSLIP adds the per-direction means of R@1/5/10.

**Ties.** Both references rank with ``torch.topk`` / ``torch.argsort`` (non-stable), whose
order inside a run of equal scores is not specified. Here the order is fixed: by default
(``ties='index'``) a gallery item ranks after every item with a strictly higher score and after
every item with an *equal* score and a *lower gallery index*, i.e. the order of a stable
descending sort. ``'optimistic'`` ranks the best positive before all items it ties with,
``'pessimistic'`` after all tied non-positives; the two bound what any tie order can give.
"""
from collections.abc import Mapping, Sequence

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor

#: Tie policies accepted by :func:`best_positive_rank` (see the module docstring).
TIE_MODES = ('index', 'optimistic', 'pessimistic')

#: Protocol names accepted by :func:`retrieval_recall`.
PROTOCOLS = ('A', 'B')

_CHUNK_ROWS = 1024


def _as_float_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    """``x`` as a float32 (float64 kept) CPU tensor; raises on non-2-D or NaN input."""
    t = torch.as_tensor(x).detach().cpu()
    if not torch.is_floating_point(t):
        t = t.to(torch.float32)
    elif t.dtype not in (torch.float32, torch.float64):
        # fp16/bf16 scores are compared in float32: same order, no overflow in the counts.
        t = t.to(torch.float32)
    if t.ndim != 2:
        raise ValueError(f'{name} must be a 2-D matrix, got shape {tuple(t.shape)}')
    if torch.isnan(t).any():
        raise ValueError(f'{name} contains NaN scores; ranks are undefined')
    return t


def best_positive_rank(scores: ArrayLike, positives: ArrayLike,
                       ties: str = 'index') -> np.ndarray:
    """0-based rank of the best-ranked positive of every query (row).

    ``scores[q, g]`` is the similarity of query ``q`` with gallery item ``g``, higher is
    better; ``positives[q, g]`` marks the relevant items. A query hits at ``k`` when the
    returned rank is ``< k``.

    Args:
        scores: ``(Q, G)`` similarity matrix (numpy or torch, any float dtype).
        positives: ``(Q, G)`` boolean matrix of relevant pairs; every row needs one.
        ties: How a positive ranks among gallery items with the *same* score:
            ``'index'`` (default) after those with a lower gallery index (stable descending
            sort), ``'optimistic'`` before all of them, ``'pessimistic'`` after all tied
            non-positives.

    Returns:
        ``(Q,)`` int64 array of ranks.

    Raises:
        ValueError: On shape mismatch, NaN scores, an unknown ``ties`` or a query without
            any positive.
    """
    if ties not in TIE_MODES:
        raise ValueError(f'ties must be one of {TIE_MODES}, got {ties!r}')
    s = _as_float_tensor(scores, 'scores')
    pos = torch.as_tensor(positives).detach().cpu().to(torch.bool)
    if pos.shape != s.shape:
        raise ValueError(f'positives has shape {tuple(pos.shape)}, scores {tuple(s.shape)}')
    no_positive = ~pos.any(dim=1)
    if no_positive.any():
        first = int(torch.nonzero(no_positive)[0])
        raise ValueError(f'{int(no_positive.sum())} queries have no positive gallery item '
                         f'(first: row {first}); their recall is undefined')
    ranks = []
    gallery_index = torch.arange(s.shape[1])
    for start in range(0, s.shape[0], _CHUNK_ROWS):
        rows = s[start:start + _CHUNK_ROWS]
        rows_pos = pos[start:start + _CHUNK_ROWS]
        # The best positive of a row is its highest-scoring positive; under 'index' ties the
        # first of equal-scoring positives (every other positive ranks after it).
        masked = torch.where(rows_pos, rows, torch.full_like(rows, -torch.inf))
        best_score = masked.max(dim=1, keepdim=True).values
        higher = (rows > best_score).sum(dim=1)
        if ties == 'optimistic':
            ranks.append(higher)
            continue
        equal = rows == best_score
        if ties == 'pessimistic':
            # after every tied non-positive (the worst order still puts one positive first)
            ranks.append(higher + (equal & ~rows_pos).sum(dim=1))
            continue
        # first positive index with the best score
        candidates = torch.where(rows_pos & equal, gallery_index, s.shape[1])
        best_index = candidates.min(dim=1, keepdim=True).values
        ranks.append(higher + (equal & (gallery_index < best_index)).sum(dim=1))
    return torch.cat(ranks).numpy().astype(np.int64)


def recall_from_ranks(ranks: ArrayLike, ks: Sequence[int]) -> dict[int, float]:
    """Percentage of queries whose best positive rank is ``< k``, for every ``k``."""
    r = np.asarray(ranks)
    if r.size == 0:
        raise ValueError('no queries to average recall over')
    return {int(k): float(np.mean(r < k) * 100.0) for k in ks}


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(int(k) for k in ks)
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f'ks must be positive integers, got {ks}')
    return ks


def _text_image_index(text_image: ArrayLike, num_images: int, num_texts: int) -> np.ndarray:
    idx = np.asarray(text_image, dtype=np.int64).reshape(-1)
    if idx.shape[0] != num_texts:
        raise ValueError(f'text_image has {idx.shape[0]} entries for {num_texts} texts')
    if idx.size and (idx.min() < 0 or idx.max() >= num_images):
        raise ValueError(f'text_image indices must be in [0, {num_images}), '
                         f'got [{idx.min()}, {idx.max()}]')
    missing = np.setdiff1d(np.arange(num_images), idx)
    if missing.size:
        raise ValueError(f'{missing.size} images have no caption (first: image {missing[0]}); '
                         'drop them before evaluating, as the reference scripts never see them')
    return idx


def _direction_scores(sim: torch.Tensor, positives: torch.Tensor, ks: tuple[int, ...],
                      ties: str) -> dict[str, float]:
    i2t = recall_from_ranks(best_positive_rank(sim, positives, ties), ks)
    t2i = recall_from_ranks(best_positive_rank(sim.T, positives.T, ties), ks)
    out = {f'txt2img_R@{k}': v for k, v in t2i.items()}
    out.update({f'img2txt_R@{k}': v for k, v in i2t.items()})
    out['txt2img_mean'] = float(np.mean(list(t2i.values())))
    out['img2txt_mean'] = float(np.mean(list(i2t.values())))
    out['mean_recall'] = float(np.mean(list(t2i.values()) + list(i2t.values())))
    return out


def protocol_a(similarity: ArrayLike, text_image: ArrayLike, ks: Sequence[int] = (1, 5, 10),
               ties: str = 'index') -> dict[str, float]:
    """Protocol A (CLIP_benchmark / RemoteCLIP): all images, all captions as distributed.

    Args:
        similarity: ``(num_images, num_texts)`` image–caption scores.
        text_image: ``(num_texts,)`` index of the image each caption describes.
        ks: Cut-offs. Defaults to ``(1, 5, 10)``.
        ties: Tie policy, see :func:`best_positive_rank`.

    Returns:
        Percentages ``txt2img_R@k``, ``img2txt_R@k``, their per-direction means
        ``txt2img_mean`` / ``img2txt_mean`` and ``mean_recall`` (mean over both directions
        and all ``ks``: RemoteCLIP's "mean recall" for ``ks=(1, 5, 10)``), plus the gallery
        sizes ``num_images`` / ``num_texts``.
    """
    ks = _check_ks(ks)
    sim = _as_float_tensor(similarity, 'similarity')
    idx = _text_image_index(text_image, sim.shape[0], sim.shape[1])
    positives = torch.zeros(sim.shape, dtype=torch.bool)
    positives[torch.from_numpy(idx), torch.arange(sim.shape[1])] = True
    out = _direction_scores(sim, positives, ks, ties)
    out.update(num_images=int(sim.shape[0]), num_texts=int(sim.shape[1]))
    return out


def merge_duplicate_captions(captions: Sequence[str], text_image: ArrayLike,
                             num_images: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Merge identical caption strings as SkyScript / FarSLIP do (``df.groupby(caption)``).

    Args:
        captions: ``(num_texts,)`` caption strings, exactly as encoded.
        text_image: ``(num_texts,)`` image index of each caption.
        num_images: Number of images (columns of the returned positives).

    Returns:
        ``(unique_texts, first_column, positives)``: the distinct strings in sorted order
        (pandas' ``groupby`` sorts its keys), the column of each one's first occurrence in
        ``captions`` (its embedding), and the ``(num_unique, num_images)`` boolean matrix
        marking every image a string describes.
    """
    if len(captions) != len(text_image):
        raise ValueError(f'{len(captions)} captions for {len(text_image)} text_image entries')
    idx = np.asarray(text_image, dtype=np.int64).reshape(-1)
    first: dict[str, int] = {}
    for column, text in enumerate(captions):
        if not isinstance(text, str):
            raise TypeError(f'caption {column} is {type(text).__name__}, expected str')
        first.setdefault(text, column)
    unique_texts = sorted(first)
    row_of = {text: row for row, text in enumerate(unique_texts)}
    positives = np.zeros((len(unique_texts), num_images), dtype=bool)
    for text, image in zip(captions, idx):
        positives[row_of[text], image] = True
    first_column = np.array([first[t] for t in unique_texts], dtype=np.int64)
    return unique_texts, first_column, positives


def protocol_b(similarity: ArrayLike, text_image: ArrayLike, captions: Sequence[str],
               ks: Sequence[int] = (1, 5, 10), ties: str = 'index') -> dict[str, float]:
    """Protocol B (SkyScript / FarSLIP): unique images, unique caption strings.

    Each distinct string is scored once, with the embedding of its first occurrence (the
    references encode each distinct string once; a deterministic encoder gives identical
    strings identical embeddings), and is positive for every image it describes. Unique
    texts are ordered as pandas' ``groupby`` orders them (sorted), images as given; with
    ``ties='index'`` this is the gallery order ties are broken by.

    Args:
        similarity: ``(num_images, num_texts)`` scores over *all* captions (images unique).
        text_image: ``(num_texts,)`` image index of each caption.
        captions: ``(num_texts,)`` caption strings as encoded (prompt prefix included).
        ks: Cut-offs. Defaults to ``(1, 5, 10)``; the references also print R@100.
        ties: Tie policy, see :func:`best_positive_rank`.

    Returns:
        Same keys as :func:`protocol_a`; ``txt2img_mean`` / ``img2txt_mean`` are FarSLIP's
        ``text2img_mean`` / ``img2txt_mean`` for ``ks=(1, 5, 10)`` (as percentages),
        ``num_texts`` counts unique strings.
    """
    ks = _check_ks(ks)
    sim = _as_float_tensor(similarity, 'similarity')
    idx = _text_image_index(text_image, sim.shape[0], sim.shape[1])
    unique_texts, first_column, positives = merge_duplicate_captions(
        captions, idx, sim.shape[0])
    sim_unique = sim[:, torch.from_numpy(first_column)]
    out = _direction_scores(sim_unique, torch.from_numpy(positives).T, ks, ties)
    out.update(num_images=int(sim.shape[0]), num_texts=len(unique_texts))
    return out


def retrieval_recall(similarity: ArrayLike, text_image: ArrayLike,
                     captions: Sequence[str] | None = None,
                     protocols: Sequence[str] = PROTOCOLS, ks: Sequence[int] = (1, 5, 10),
                     ties: str = 'index') -> dict[str, float]:
    """Recall of every requested protocol, keys prefixed ``'A/'`` / ``'B/'``.

    Protocol B needs ``captions`` (the strings that were encoded) to merge duplicates.

    Raises:
        ValueError: On an unknown protocol, or protocol B without captions.
    """
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown or not protocols:
        raise ValueError(f'protocols must be a non-empty subset of {PROTOCOLS}, got '
                         f'{tuple(protocols)}')
    results: dict[str, float] = {}
    for name in protocols:
        if name == 'A':
            scores: Mapping[str, float] = protocol_a(similarity, text_image, ks, ties)
        else:
            if captions is None:
                raise ValueError('protocol B merges identical caption strings: pass captions')
            scores = protocol_b(similarity, text_image, captions, ks, ties)
        results.update({f'{name}/{key}': value for key, value in scores.items()})
    return results
