"""Rotated detections as text, and model text back into rotated boxes.

Multimodal language models detect by writing boxes as text. LMMRotate (Li et al., "A Simple
Aerial Detection Baseline of Multimodal Language Models", arXiv 2501.09720) trains Florence-2
to answer with each category name followed by its quadrilaterals, every coordinate one
``<loc_k>`` token on a 1000-bin grid, boxes of one category separated by ``<sep>``::

    plane<loc_12><loc_40>...<loc_33><sep><loc_500>...<loc_530>large vehicle<loc_7>...

(class names as in the dataset, ``-`` written as a space, lower case). Coordinates are
quantised as Florence-2's ``CoordinatesQuantizer`` does: ``k = clamp(floor(x / (W / bins)),
0, bins - 1)`` and read back at the bin centre ``(k + 0.5) * W / bins``; a parsed
quadrilateral becomes a rotated box through ``cv2.minAreaRect``. Other remote-sensing VLMs use
other spellings of the same idea: GeoChat writes ``<p>plane</p>{<x1><y1><x2><y2>|<θ>}`` (the
unrotated box on a 0-100 grid, then the angle in integer degrees), EarthDial the same values
as ``<ref>2 white cars</ref><box>[[[x1, y1, x2, y2, θ]][[...]]]</box>``, Falcon writes
``plane<quad><x1><y1>...<y4></quad>`` and InternVL/All-Seeing ``<ref>plane</ref><box>[[x1, y1,
..., y4]]</box>``. :class:`RotatedBoxTextCodec` covers them with one set of markers
(:data:`BOX_TEXT_PRESETS`), so the VLM models reuse one parser.

Model text is untrusted: :meth:`RotatedBoxTextCodec.decode` never raises on it. Incomplete
boxes (a generation cut at the token limit), labels without boxes, unknown categories and
coordinates outside the image are listed in the returned :class:`BoxTextReport`; complete
boxes are kept. Category names are matched exactly, then through synonyms and singular forms,
then with :mod:`difflib` above a threshold (LMMRotate always takes rapidfuzz's best match:
``fuzzy_threshold=0`` does the same).
"""
from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

BOX_FORMATS = ('poly', 'rbox', 'xyxya')
"""``poly``: 8 values x1 y1 ... x4 y4; ``rbox``: cx cy w h θ; ``xyxya``: the unrotated box
x1 y1 x2 y2 of the rotated rectangle and its angle θ (GeoChat); 4 values mean θ = 0."""

ANGLE_VERSIONS = {'le90': (-math.pi / 2, math.pi), 'le135': (-math.pi / 4, math.pi),
                  'oc': (-math.pi / 2, math.pi / 2)}
"""Start and span of the angle range of each mmrotate angle version."""

BOX_TEXT_PRESETS: dict[str, dict[str, Any]] = {
    # LMMRotate / Florence-2 <ROD>: label, then polygons of <loc_k> separated by <sep>.
    'lmmrotate': dict(format='poly', bins=1000, quantize='floor', coord_token='<loc_{}>',
                      box_sep='<sep>'),
    # GeoChat: <p>label</p>{<x1><y1><x2><y2>|<deg>}{...} on a 0..100 grid (x / W * 100).
    'geochat': dict(format='xyxya', bins=100, quantize='round', coord_token='<{}>',
                    label_open='<p>', label_close='</p>', box_open='{', box_close='}',
                    angle_sep='|', angle_format='degrees'),
    # Falcon: label<quad><x1><y1>...<y4></quad> on a 1000-bin grid.
    'falcon': dict(format='poly', bins=1000, quantize='floor', coord_token='<{}>',
                   box_open='<quad>', box_close='</quad>'),
    # EarthDial (hiyamdebary/EarthDial, src/earthdial/eval/rs_detection/detection_eval.py and
    # its results/*.jsonl): <ref>label</ref> <box>[[[x1, y1, x2, y2, deg]][[...]]]</box>, the
    # unrotated box on a 0..100 grid then integer degrees; its evaluation turns the box by
    # -deg in mmrotate's sense (row vectors times [[c, -s], [s, c]], y down), so angle_sign=-1.
    # Labels carry a count and attributes ('2 white small car'): map them with ``synonyms``.
    'earthdial': dict(format='xyxya', bins=100, quantize='round', coord_token='{}',
                      coord_sep=', ', label_open='<ref>', label_close='</ref>',
                      group_open='<box>[', group_close=']</box>', box_open='[[',
                      box_close=']]', angle_sep=', ', angle_format='degrees', angle_sign=-1),
    # InternVL / All-Seeing (LMMRotate's "allseeing" response format).
    'allseeing': dict(format='poly', bins=1000, quantize='floor', coord_token='{}',
                      coord_sep=', ', label_open='<ref>', label_close='</ref>',
                      group_open='<box>[', group_close=']</box>', box_open='[',
                      box_close=']', box_sep=', '),
}
"""Keyword presets for :meth:`RotatedBoxTextCodec.from_preset`."""

IGNORED_TOKENS = ('<s>', '</s>', '<pad>', '<|im_end|>', '<|endoftext|>')
"""Special tokens some tokenizers leave in decoded text; removed before parsing."""


@dataclass
class BoxTextReport:
    """What :meth:`RotatedBoxTextCodec.decode` could not use, or had to change.

    Attributes:
        malformed: One line per dropped piece of text, naming the piece and the reason.
        unknown_labels: Category texts that matched no class (their boxes are dropped).
        fuzzy_matches: Category text -> class name, for every inexact match.
        num_clipped: Boxes with a coordinate outside the image, clipped into it.
    """

    malformed: list[str] = field(default_factory=list)
    unknown_labels: list[str] = field(default_factory=list)
    fuzzy_matches: dict[str, str] = field(default_factory=dict)
    num_clipped: int = 0

    @property
    def ok(self) -> bool:
        """True when every piece of the text became a box of a known class."""
        return not self.malformed and not self.unknown_labels


def normalize_name(name: str) -> str:
    """Lower case, ``-``/``_`` as spaces, one space: ``'Large-Vehicle'`` -> ``'large vehicle'``."""
    return ' '.join(re.sub(r'[-_]+', ' ', name).lower().split())


def _singular(name: str) -> str:
    """Crude English singular of the last word (``ships``, ``boxes``, ``harbors``)."""
    for suffix, repl in (('ies', 'y'), ('sses', 'ss'), ('xes', 'x'), ('ches', 'ch'),
                         ('shes', 'sh'), ('s', '')):
        if name.endswith(suffix) and not name.endswith('ss') and len(name) > len(suffix) + 1:
            return name[:-len(suffix)] + repl
    return name


class ClassMatcher:
    """Map free category text to class indices: exact, synonym, singular, then difflib.

    Args:
        classes: Class names of the dataset (e.g. DOTA's ``'large-vehicle'``).
        synonyms: Extra spellings -> class name (either normalised or as in ``classes``).
        threshold: Lowest :class:`difflib.SequenceMatcher` ratio accepted for a fuzzy match;
            0 always takes the best match (as LMMRotate does with rapidfuzz).
    """

    def __init__(self, classes: Sequence[str], synonyms: Mapping[str, str] | None = None,
                 threshold: float = 0.6) -> None:
        self.classes = tuple(classes)
        self.threshold = threshold
        self.lookup: dict[str, int] = {}
        for idx, name in enumerate(self.classes):
            norm = normalize_name(name)
            for key in (norm, norm.replace(' ', '')):
                self.lookup.setdefault(key, idx)
        by_name = {normalize_name(c): i for i, c in enumerate(self.classes)}
        for text, target in (synonyms or {}).items():
            if normalize_name(target) not in by_name:
                raise ValueError(f'synonym {text!r} -> {target!r}: no such class in {self.classes}')
            self.lookup[normalize_name(text)] = by_name[normalize_name(target)]

    def match(self, text: str) -> tuple[int | None, bool]:
        """Class index of ``text`` (None when nothing is close enough) and whether it was fuzzy."""
        norm = normalize_name(text)
        for key in (norm, norm.replace(' ', ''), _singular(norm),
                    _singular(norm).replace(' ', '')):
            if key in self.lookup:
                return self.lookup[key], key != norm
        if not norm:
            return None, False
        scores = [(difflib.SequenceMatcher(None, norm, key).ratio(), key) for key in self.lookup]
        score, key = max(scores)
        if score >= self.threshold:
            return self.lookup[key], True
        return None, False


def _as_numpy(values: Any, dtype: Any = np.float64) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    if hasattr(values, 'tensor'):  # mmrotate RotatedBoxes / QuadriBoxes
        values = values.tensor.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype)


def regularize_rboxes(boxes: np.ndarray, angle_version: str = 'le90') -> np.ndarray:
    """Bring ``(N, 5)`` rotated boxes (radians) into ``angle_version``'s unique form.

    ``le90``/``le135``: width is the long side and θ in [start, start + π); ``oc``: θ in
    [-π/2, 0) with width and height swapped as needed (mmrotate's ``regularize_boxes``).
    """
    start, span = ANGLE_VERSIONS[angle_version]
    out = boxes.astype(np.float64, copy=True)
    if len(out) == 0:
        return out
    w, h, t = out[:, 2].copy(), out[:, 3].copy(), out[:, 4].copy()
    if angle_version == 'oc':
        # an angle and that angle + π/2 describe the same box with w and h swapped
        quarter = np.floor((t - start) / (math.pi / 2)).astype(np.int64)
        t = t - quarter * (math.pi / 2)
        swap = (quarter % 2) == 1
    else:
        swap = h > w
        t = np.where(swap, t + math.pi / 2, t)
        t = start + np.mod(t - start, span)
    out[:, 2], out[:, 3] = np.where(swap, h, w), np.where(swap, w, h)
    out[:, 4] = t
    return out


def rbox_to_poly(boxes: np.ndarray) -> np.ndarray:
    """Corners ``(N, 8)`` of rotated boxes ``(N, 5)``, in mmrotate's ``rbox2qbox`` order."""
    cx, cy, w, h, t = (boxes[:, i] for i in range(5))
    cos, sin = np.cos(t), np.sin(t)
    v1 = np.stack([w / 2 * cos, w / 2 * sin], axis=1)
    v2 = np.stack([-h / 2 * sin, h / 2 * cos], axis=1)
    ctr = np.stack([cx, cy], axis=1)
    return np.concatenate([ctr + v1 + v2, ctr + v1 - v2, ctr - v1 - v2, ctr - v1 + v2], axis=1)


def poly_to_rbox(polys: np.ndarray, angle_version: str = 'le90') -> np.ndarray:
    """Minimum-area rotated rectangles ``(N, 5)`` of polygons ``(N, 2K)`` (``cv2.minAreaRect``)."""
    out = np.zeros((len(polys), 5))
    for i, poly in enumerate(polys):
        (x, y), (w, h), angle = cv2.minAreaRect(poly.reshape(-1, 2).astype(np.float32))
        out[i] = (x, y, w, h, angle / 180 * math.pi)
    return regularize_rboxes(out, angle_version)


class RotatedBoxTextCodec:
    """Write rotated detections as text and parse model text back into rotated boxes.

    The text of one image is a sequence of groups, one per category::

        label_open LABEL label_close group_open box (box_sep box)* group_close
        box = box_open v1 coord_sep v2 ... [angle_sep θ] box_close

    where every value is ``coord_token.format(k)`` for an integer bin ``k``. Parsing is
    lenient: it finds the value tokens, treats text containing letters between them as a
    label, box markers as box boundaries, and cuts runs of values without markers into boxes
    of the format's length (LMMRotate does the same for concatenated polygons).

    Quantisation (``bins`` per image side, x by the width W, y by the height H):

    - ``'floor'`` (Florence-2): ``k = clamp(floor(x * bins / W), 0, bins - 1)``, read back at
      ``(k + 0.5) * W / bins``;
    - ``'round'`` (GeoChat): ``k = clamp(round(x * bins / W), 0, bins)``, read back at
      ``k * W / bins``.

    Either way a coordinate inside the image comes back within ``W / (2 bins)`` of itself.
    In ``rbox``/``xyxya`` formats θ is written in ``angle_bins`` bins over the angle version's
    range (error ≤ span / (2 angle_bins)) or in integer degrees (``angle_format='degrees'``,
    error ≤ 0.5°); ``rbox`` sizes are quantised like coordinates (w by W, h by H) and saturate
    at the image size.

    Args:
        classes: Class names; labels are indices into them.
        format: ``'poly'``, ``'rbox'`` or ``'xyxya'`` (see :data:`BOX_FORMATS`).
        bins: Number of quantisation bins per image side.
        image_size: Default ``(width, height)``; :meth:`encode`/:meth:`decode` may override it.
        angle_version: mmrotate angle convention of the boxes in and out (``'le90'``,
            ``'le135'``, ``'oc'``), θ in radians.
        quantize: ``'floor'`` or ``'round'``.
        angle_format: ``'bins'`` or ``'degrees'``.
        angle_bins: Bins over the angle range; defaults to ``bins``.
        angle_sign: 1 writes mmrotate's θ (clockwise on screen, y pointing down); -1 writes
            -θ, for models whose angle turns the other way (GeoChat's demo draws with
            ``cv2.getRotationMatrix2D``, counter-clockwise for positive angles).
        class_names: How each class is written; defaults to :func:`normalize_name` of
            ``classes`` (LMMRotate's ``'large vehicle'``).
        synonyms: Extra category spellings -> class name for decoding.
        fuzzy_threshold: See :class:`ClassMatcher`.
        coord_token, coord_sep, box_open, box_close, box_sep, angle_sep, label_open,
        label_close, group_open, group_close, group_sep: The markers (see above).
        clip: Clip decoded boxes into the image (and report it).
    """

    def __init__(self, classes: Sequence[str], format: str = 'poly', bins: int = 1000,
                 image_size: tuple[int, int] | None = None, angle_version: str = 'le90',
                 quantize: str = 'floor', angle_format: str = 'bins',
                 angle_bins: int | None = None, angle_sign: int = 1,
                 class_names: Sequence[str] | None = None,
                 synonyms: Mapping[str, str] | None = None, fuzzy_threshold: float = 0.6,
                 coord_token: str = '<loc_{}>', coord_sep: str = '', box_open: str = '',
                 box_close: str = '', box_sep: str = '', angle_sep: str = '',
                 label_open: str = '', label_close: str = '', group_open: str = '',
                 group_close: str = '', group_sep: str = '', clip: bool = True) -> None:
        if format not in BOX_FORMATS:
            raise ValueError(f'format must be one of {BOX_FORMATS}, got {format!r}')
        if angle_version not in ANGLE_VERSIONS:
            raise ValueError(f'angle_version must be one of {tuple(ANGLE_VERSIONS)}, '
                             f'got {angle_version!r}')
        if quantize not in ('floor', 'round'):
            raise ValueError(f"quantize must be 'floor' or 'round', got {quantize!r}")
        if angle_format not in ('bins', 'degrees'):
            raise ValueError(f"angle_format must be 'bins' or 'degrees', got {angle_format!r}")
        if bins < 1 or coord_token.count('{}') != 1:
            raise ValueError(f'need bins >= 1 and one "{{}}" in coord_token, got bins={bins}, '
                             f'coord_token={coord_token!r}')
        self.classes = tuple(classes)
        self.class_names = tuple(class_names) if class_names is not None else tuple(
            normalize_name(c) for c in self.classes)
        if len(self.class_names) != len(self.classes):
            raise ValueError(f'{len(self.class_names)} class_names for {len(self.classes)} classes')
        self.format, self.bins, self.image_size = format, bins, image_size
        self.angle_version, self.quantize, self.angle_format = angle_version, quantize, angle_format
        self.angle_bins = angle_bins or bins
        if angle_sign not in (1, -1) or (angle_sign < 0 and angle_version == 'oc'):
            raise ValueError(f"angle_sign must be 1, or -1 with a long-edge angle version, got "
                             f"{angle_sign!r} with {angle_version!r}")
        self.angle_sign = angle_sign
        self.matcher = ClassMatcher(self.classes + self.class_names, synonyms, fuzzy_threshold)
        self.coord_token, self.coord_sep, self.box_sep = coord_token, coord_sep, box_sep
        self.box_open, self.box_close, self.angle_sep = box_open, box_close, angle_sep
        self.label_open, self.label_close = label_open, label_close
        self.group_open, self.group_close, self.group_sep = group_open, group_close, group_sep
        self.clip = clip
        prefix, suffix = coord_token.split('{}')
        value = r'(-?\d+(?:\.\d+)?)'
        if prefix or suffix:
            self._value_re = re.compile(re.escape(prefix) + value + re.escape(suffix))
        else:  # bare numbers: not glued to letters, so 'Boeing737' stays a name
            self._value_re = re.compile(r'(?<![\w.])' + value + r'(?![\w.])')

    @classmethod
    def from_preset(cls, preset: str, classes: Sequence[str], **overrides: Any
                    ) -> 'RotatedBoxTextCodec':
        """A codec with the markers of ``preset`` (:data:`BOX_TEXT_PRESETS`) and ``overrides``."""
        if preset not in BOX_TEXT_PRESETS:
            raise ValueError(f'unknown preset {preset!r}; presets: {sorted(BOX_TEXT_PRESETS)}')
        return cls(classes, **{**BOX_TEXT_PRESETS[preset], **overrides})

    @property
    def values_per_box(self) -> int:
        return {'poly': 8, 'rbox': 5, 'xyxya': 5}[self.format]

    def _size(self, image_size: tuple[int, int] | None) -> tuple[float, float]:
        size = image_size or self.image_size
        if size is None:
            raise ValueError('image_size (width, height) is needed: pass it to the codec or call')
        return float(size[0]), float(size[1])

    # ----------------------------------------------------------------- quantisation
    def quantize_values(self, values: np.ndarray, side: float) -> np.ndarray:
        """Bins of coordinates ``values`` along an image side of length ``side``."""
        scaled = values * self.bins / side
        if self.quantize == 'floor':
            return np.clip(np.floor(scaled), 0, self.bins - 1).astype(np.int64)
        return np.clip(np.round(scaled), 0, self.bins).astype(np.int64)

    def dequantize_values(self, bins: np.ndarray, side: float) -> np.ndarray:
        """Coordinates of bins (bin centres for ``'floor'``, bin edges for ``'round'``)."""
        offset = 0.5 if self.quantize == 'floor' else 0.0
        return (bins + offset) * side / self.bins

    def _angle_to_token(self, theta: np.ndarray) -> np.ndarray:
        if self.angle_sign < 0:  # -θ of the same box, back in the angle version's range
            theta = regularize_rboxes(np.stack([np.zeros_like(theta)] * 2 + [
                np.full_like(theta, 2), np.ones_like(theta), -theta], axis=1),
                self.angle_version)[:, 4]
        if self.angle_format == 'degrees':
            return np.round(np.degrees(theta)).astype(np.int64)
        start, span = ANGLE_VERSIONS[self.angle_version]
        q = np.floor((theta - start) / span * self.angle_bins)
        return np.clip(q, 0, self.angle_bins - 1).astype(np.int64)

    def _token_to_angle(self, q: np.ndarray) -> np.ndarray:
        if self.angle_format == 'degrees':
            theta = np.radians(q)
        else:
            start, span = ANGLE_VERSIONS[self.angle_version]
            theta = start + (q + 0.5) * span / self.angle_bins
        return self.angle_sign * theta

    # ----------------------------------------------------------------------- encode
    def encode(self, boxes: Any, labels: Any, image_size: tuple[int, int] | None = None,
               order: str = 'class') -> str:
        """Text of one image's boxes.

        Args:
            boxes: ``(N, 5)`` rotated boxes (cx, cy, w, h, θ radians) or ``(N, 8)``
                quadrilaterals (written in their own vertex order in ``poly`` format), pixels.
            labels: ``(N,)`` class indices.
            image_size: ``(width, height)``; defaults to the codec's.
            order: ``'class'``: groups in class-index order (boxes in input order inside a
                group); ``'first'``: groups in order of first appearance.

        Raises:
            ValueError: On bad shapes or labels outside the class list.
        """
        width, height = self._size(image_size)
        boxes, labels = _as_numpy(boxes), _as_numpy(labels, np.int64).reshape(-1)
        if len(labels) == 0 and boxes.size == 0:
            return ''
        if boxes.ndim != 2 or boxes.shape[1] not in (5, 8) or len(boxes) != len(labels):
            raise ValueError(f'boxes must be (N, 5) or (N, 8) with N = len(labels) = '
                             f'{len(labels)}, got shape {boxes.shape}')
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise ValueError(f'labels must be in [0, {len(self.classes)}), got {labels.tolist()}')
        tokens = self._box_tokens(boxes, width, height)
        if order == 'class':
            groups = sorted(set(labels.tolist()))
        elif order == 'first':
            groups = list(dict.fromkeys(labels.tolist()))
        else:
            raise ValueError(f"order must be 'class' or 'first', got {order!r}")
        pieces = []
        for label in groups:
            box_texts = [self._box_text(tokens[i]) for i in np.flatnonzero(labels == label)]
            pieces.append(f'{self.label_open}{self.class_names[label]}{self.label_close}'
                          f'{self.group_open}{self.box_sep.join(box_texts)}{self.group_close}')
        return self.group_sep.join(pieces)

    def _box_tokens(self, boxes: np.ndarray, width: float, height: float) -> np.ndarray:
        """Integer tokens ``(N, values_per_box)`` of pixel boxes."""
        if self.format == 'poly':
            polys = boxes if boxes.shape[1] == 8 else rbox_to_poly(boxes)
            q = np.empty(polys.shape, dtype=np.int64)
            q[:, 0::2] = self.quantize_values(polys[:, 0::2], width)
            q[:, 1::2] = self.quantize_values(polys[:, 1::2], height)
            return q
        rboxes = boxes if boxes.shape[1] == 5 else poly_to_rbox(boxes, self.angle_version)
        rboxes = regularize_rboxes(rboxes, self.angle_version)
        cx, cy, w, h, t = (rboxes[:, i] for i in range(5))
        if self.format == 'rbox':
            cols = [self.quantize_values(cx, width), self.quantize_values(cy, height),
                    self.quantize_values(w, width), self.quantize_values(h, height)]
        else:
            cols = [self.quantize_values(cx - w / 2, width),
                    self.quantize_values(cy - h / 2, height),
                    self.quantize_values(cx + w / 2, width),
                    self.quantize_values(cy + h / 2, height)]
        return np.stack(cols + [self._angle_to_token(t)], axis=1).reshape(len(boxes), 5)

    def _box_text(self, values: np.ndarray) -> str:
        toks = [self.coord_token.format(int(v)) for v in values]
        if self.format != 'poly':
            body = self.coord_sep.join(toks[:4]) + (self.angle_sep or self.coord_sep) + toks[4]
        else:
            body = self.coord_sep.join(toks)
        return f'{self.box_open}{body}{self.box_close}'

    # ----------------------------------------------------------------------- decode
    def decode(self, text: str, image_size: tuple[int, int] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, BoxTextReport]:
        """Rotated boxes ``(N, 5)`` float32 (pixels, radians, ``angle_version``), labels
        ``(N,)`` int64 and a :class:`BoxTextReport` of what was dropped; never raises on text.

        Raises:
            ValueError: Only when no image size is known (a caller error, not a text error).
        """
        width, height = self._size(image_size)
        report = BoxTextReport()
        if not isinstance(text, str):
            report.malformed.append(f'not text: {type(text).__name__}')
            return torch.zeros((0, 5)), torch.zeros((0,), dtype=torch.int64), report
        for tok in IGNORED_TOKENS:
            text = text.replace(tok, '')
        boxes: list[np.ndarray] = []
        labels: list[int] = []
        label: int | None = None
        label_text: str | None = None
        run: list[float] = []
        run_start = 0
        got_box = True
        n = self.values_per_box

        def flush(end: int) -> None:
            nonlocal run, got_box
            if not run:
                return
            usable = len(run) - len(run) % n
            if self.format == 'xyxya' and len(run) == 4:
                run, usable = run + [0.0], 5  # GeoChat: a box without angle is horizontal
            if usable < len(run):
                report.malformed.append(
                    f'{text[run_start:end]!r}: {len(run)} values, a {self.format} box needs {n}')
            if label_text is None and usable:
                report.malformed.append(f'{text[run_start:end]!r}: boxes before any label')
            elif label is not None:
                for i in range(0, usable, n):
                    boxes.append(np.asarray(run[i:i + n]))
                    labels.append(label)
            got_box = True  # an incomplete box is reported once, above
            run = []

        pos = 0
        for m in self._value_matches(text) + [None]:
            between = text[pos:m.start() if m else len(text)]
            name = self._label_in(between)
            if name is not None or self._is_boundary(between) or m is None:
                flush(pos)
            if name is not None:
                if not got_box:
                    report.malformed.append(f'label {label_text!r} without boxes')
                label_text, got_box = name, False
                label, fuzzy = self.matcher.match(name)
                if label is None:
                    report.unknown_labels.append(name)
                elif fuzzy:
                    report.fuzzy_matches[name] = self.classes[label % len(self.classes)]
                if label is not None:
                    label %= len(self.classes)  # class_names are matched after classes
            if m is None:
                break
            if not run:
                run_start = m.start()
            run.append(float(m.group(1)))
            pos = m.end()
        if not got_box:
            report.malformed.append(f'label {label_text!r} without boxes')
        return self._to_boxes(boxes, labels, width, height, report)

    def _value_matches(self, text: str) -> list[re.Match]:
        """Value tokens of ``text`` outside ``label_open ... label_close`` spans (so a label
        such as EarthDial's ``'2 white small car'`` keeps its digits)."""
        matches = list(self._value_re.finditer(text))
        if not (self.label_open and self.label_close):
            return matches
        spans = [(m.start(), m.end()) for m in re.finditer(
            re.escape(self.label_open) + '.*?' + re.escape(self.label_close), text, re.S)]
        return [m for m in matches if not any(a <= m.start() < b for a, b in spans)]

    def _label_in(self, between: str) -> str | None:
        """The category named in the text between two values, if any."""
        if self.label_open and self.label_open in between:
            inner = between.rsplit(self.label_open, 1)[1]
            name = inner.split(self.label_close, 1)[0] if self.label_close else inner
        else:
            name = between
            for marker in (self.label_close, self.group_open, self.group_close, self.box_open,
                           self.box_close, self.box_sep, self.angle_sep, '<poly>', '</poly>',
                           '<sep>'):
                if marker:
                    name = name.replace(marker, ' ')
        name = name.strip(' \t\n,;:.[]{}()|')
        return name if re.search(r'[A-Za-z]', name) else None

    def _is_boundary(self, between: str) -> bool:
        markers = [self.box_open, self.box_close, self.group_open, self.group_close]
        if self.box_sep != self.coord_sep:
            markers.append(self.box_sep)
        return any(m and m in between for m in markers)

    def _to_boxes(self, values: list[np.ndarray], labels: list[int], width: float,
                  height: float, report: BoxTextReport
                  ) -> tuple[torch.Tensor, torch.Tensor, BoxTextReport]:
        if not values:
            return torch.zeros((0, 5)), torch.zeros((0,), dtype=torch.int64), report
        vals = np.stack(values)
        if self.format == 'poly':
            polys = np.empty_like(vals)
            polys[:, 0::2] = self.dequantize_values(vals[:, 0::2], width)
            polys[:, 1::2] = self.dequantize_values(vals[:, 1::2], height)
            if self.clip:
                clipped = np.stack([np.clip(polys[:, 0::2], 0, width),
                                    np.clip(polys[:, 1::2], 0, height)], axis=2)
                clipped = clipped.reshape(polys.shape)
                report.num_clipped += int(np.any(clipped != polys, axis=1).sum())
                polys = clipped
            rboxes = poly_to_rbox(polys, self.angle_version)
        else:
            x0 = self.dequantize_values(vals[:, 0], width)
            y0 = self.dequantize_values(vals[:, 1], height)
            a = self.dequantize_values(vals[:, 2], width)
            b = self.dequantize_values(vals[:, 3], height)
            t = self._token_to_angle(vals[:, 4])
            if self.format == 'rbox':
                cx, cy, w, h = x0, y0, a, b
            else:
                cx, cy, w, h = (x0 + a) / 2, (y0 + b) / 2, np.abs(a - x0), np.abs(b - y0)
            rboxes = regularize_rboxes(np.stack([cx, cy, w, h, t], axis=1), self.angle_version)
            if self.clip:
                rboxes = self._clip_rboxes(rboxes, width, height, report)
        return (torch.as_tensor(rboxes, dtype=torch.float32),
                torch.as_tensor(labels, dtype=torch.int64), report)

    def _clip_rboxes(self, rboxes: np.ndarray, width: float, height: float,
                     report: BoxTextReport) -> np.ndarray:
        """Boxes reaching out of the image become min-area rectangles of their clipped corners."""
        polys = rbox_to_poly(rboxes)
        tol = 1e-6 * max(width, height)
        outside = ((polys[:, 0::2] < -tol) | (polys[:, 0::2] > width + tol) |
                   (polys[:, 1::2] < -tol) | (polys[:, 1::2] > height + tol)).any(axis=1)
        if outside.any():
            report.num_clipped += int(outside.sum())
            sub = polys[outside]
            sub[:, 0::2] = np.clip(sub[:, 0::2], 0, width)
            sub[:, 1::2] = np.clip(sub[:, 1::2], 0, height)
            rboxes = rboxes.copy()
            rboxes[outside] = poly_to_rbox(sub, self.angle_version)
        return rboxes
