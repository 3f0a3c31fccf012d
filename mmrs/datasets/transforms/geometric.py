"""Paired geometric transforms: one random draw, applied to both dates and every label map.

Drawing the parameters once keeps pixel correspondence between the dates and the labels,
which change detection depends on. Images keep all their bands and their dtype (OpenCV
resizing is done in channel chunks and through float for dtypes it cannot interpolate).
"""
from collections.abc import Callable, Sequence

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from mmrs.registry import TRANSFORMS

_CV2_LINEAR_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)
_MAX_CHUNK = 256


def _apply(results: dict, img_fn: Callable, seg_fn: Callable) -> None:
    """Apply ``img_fn`` to both images and ``seg_fn`` to every map in ``seg_fields``."""
    results['img'] = [np.ascontiguousarray(img_fn(img)) for img in results['img']]
    for key in results.get('seg_fields', []):
        results[key] = np.ascontiguousarray(seg_fn(results[key]))
    results['img_shape'] = results['img'][0].shape[:2]


def resize_array(arr: np.ndarray, size: tuple[int, int], interpolation: str) -> np.ndarray:
    """Resize ``(H, W)`` or ``(H, W, C)`` to ``size=(w, h)`` for any band count and dtype."""
    if arr.ndim == 2:
        return resize_array(arr[..., None], size, interpolation)[..., 0]
    dtype = arr.dtype
    work = arr
    if interpolation != 'nearest' and dtype.type not in _CV2_LINEAR_DTYPES:
        work = arr.astype(np.float64)
    chunks = [
        mmcv.imresize(work[..., i:i + _MAX_CHUNK], size, interpolation=interpolation)
        for i in range(0, work.shape[2], _MAX_CHUNK)
    ]
    out = np.concatenate([c.reshape(size[1], size[0], -1) for c in chunks], axis=2)
    if out.dtype != dtype:
        out = np.rint(out) if np.issubdtype(dtype, np.integer) else out
        out = out.astype(dtype)
    return out


@TRANSFORMS.register_module()
class PairedRandomFlip(BaseTransform):
    """Flip both dates and all label maps the same way.

    Args:
        prob: Probability of flipping (a direction is then drawn uniformly), or one
            probability per direction (their sum ≤ 1).
        direction: ``'horizontal'``, ``'vertical'``, ``'diagonal'`` or a sequence of them.
    """

    def __init__(self, prob: float | Sequence[float] = 0.5,
                 direction: str | Sequence[str] = ('horizontal', 'vertical', 'diagonal')):
        self.direction = [direction] if isinstance(direction, str) else list(direction)
        for d in self.direction:
            if d not in ('horizontal', 'vertical', 'diagonal'):
                raise ValueError(f'unknown flip direction {d!r}')
        if isinstance(prob, (int, float)):
            self.probs = [prob / len(self.direction)] * len(self.direction)
        else:
            self.probs = list(prob)
            if len(self.probs) != len(self.direction):
                raise ValueError('prob and direction must have the same length')
        if not 0 <= sum(self.probs) <= 1:
            raise ValueError(f'flip probabilities must sum to [0, 1], got {self.probs}')

    def transform(self, results: dict) -> dict:
        choices = self.direction + [None]
        p = np.array(self.probs + [max(0.0, 1.0 - sum(self.probs))])
        direction = choices[np.random.choice(len(choices), p=p / p.sum())]
        results['flip'] = direction is not None
        results['flip_direction'] = direction
        if direction is not None:
            _apply(results, lambda a: mmcv.imflip(a, direction),
                   lambda a: mmcv.imflip(a, direction))
        return results


@TRANSFORMS.register_module()
class PairedRandomRotate90(BaseTransform):
    """Rotate both dates and all label maps by the same multiple of 90° (exact, no resampling).

    Args:
        prob: Probability of rotating; the number of quarter turns (1–3) is then uniform.
    """

    def __init__(self, prob: float = 0.5) -> None:
        self.prob = prob

    def transform(self, results: dict) -> dict:
        k = int(np.random.randint(1, 4)) if np.random.rand() < self.prob else 0
        results['rotate90_k'] = k
        if k:
            _apply(results, lambda a: np.rot90(a, k), lambda a: np.rot90(a, k))
        return results


@TRANSFORMS.register_module()
class PairedRandomCrop(BaseTransform):
    """Crop the same window from both dates and all label maps (as mmseg's RandomCrop).

    Args:
        crop_size: ``(h, w)`` or one int; clipped to the image size.
        cat_max_ratio: Up to 10 windows are drawn until no single class of ``gt_seg_map``
            covers more than this fraction of the (non-ignored) crop.
        ignore_index: Label value left out of the ratio.
    """

    def __init__(self, crop_size: int | Sequence[int], cat_max_ratio: float = 1.0,
                 ignore_index: int = 255) -> None:
        self.crop_size = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(
            crop_size)
        if len(self.crop_size) != 2 or min(self.crop_size) <= 0:
            raise ValueError(f'crop_size must be positive (h, w), got {crop_size}')
        self.cat_max_ratio = cat_max_ratio
        self.ignore_index = ignore_index

    def _random_bbox(self, h: int, w: int) -> tuple[int, int, int, int]:
        ch, cw = min(self.crop_size[0], h), min(self.crop_size[1], w)
        y0 = np.random.randint(0, h - ch + 1)
        x0 = np.random.randint(0, w - cw + 1)
        return y0, y0 + ch, x0, x0 + cw

    def transform(self, results: dict) -> dict:
        h, w = results['img'][0].shape[:2]
        bbox = self._random_bbox(h, w)
        seg_key = 'gt_seg_map' if 'gt_seg_map' in results else next(
            iter(results.get('seg_fields', [])), None)
        if self.cat_max_ratio < 1.0 and seg_key is not None:
            for _ in range(10):
                crop = results[seg_key][bbox[0]:bbox[1], bbox[2]:bbox[3]]
                labels, counts = np.unique(crop, return_counts=True)
                counts = counts[labels != self.ignore_index]
                if len(counts) > 1 and counts.max() / counts.sum() < self.cat_max_ratio:
                    break
                bbox = self._random_bbox(h, w)
        y0, y1, x0, x1 = bbox
        _apply(results, lambda a: a[y0:y1, x0:x1], lambda a: a[y0:y1, x0:x1])
        results['crop_bbox'] = bbox
        return results


def _resize_results(results: dict, scale: tuple[int, int], keep_ratio: bool) -> dict:
    h, w = results['img'][0].shape[:2]
    new_w, new_h = mmcv.rescale_size((w, h), scale) if keep_ratio else scale
    size = (int(new_w), int(new_h))
    _apply(results, lambda a: resize_array(a, size, 'bilinear'),
           lambda a: resize_array(a, size, 'nearest'))
    results['scale'] = size
    results['scale_factor'] = (size[0] / w, size[1] / h)
    results['keep_ratio'] = keep_ratio
    return results


@TRANSFORMS.register_module()
class PairedResize(BaseTransform):
    """Resize both dates (bilinear) and all label maps (nearest) to the same size.

    Args:
        scale: Target ``(w, h)`` (mmcv's convention) or one int for a square.
        keep_ratio: Keep the aspect ratio, fitting the image inside ``scale`` (long edge ≤
            max(scale), short edge ≤ min(scale)).
    """

    def __init__(self, scale: int | Sequence[int], keep_ratio: bool = True) -> None:
        self.scale = (scale, scale) if isinstance(scale, int) else tuple(scale)
        self.keep_ratio = keep_ratio

    def transform(self, results: dict) -> dict:
        return _resize_results(results, self.scale, self.keep_ratio)


@TRANSFORMS.register_module()
class PairedRandomResize(BaseTransform):
    """Resize both dates and all maps to one randomly drawn scale.

    Args:
        scale: Base ``(w, h)``; with ``ratio_range=None`` a pair of ``(w, h)`` scales
            between which each edge is drawn uniformly (mmcv's RandomResize).
        ratio_range: ``(min, max)`` factor applied to ``scale``.
        keep_ratio: As in :class:`PairedResize`.
    """

    def __init__(self, scale: Sequence, ratio_range: Sequence[float] | None = None,
                 keep_ratio: bool = True) -> None:
        self.scale = scale
        self.ratio_range = ratio_range
        self.keep_ratio = keep_ratio

    def transform(self, results: dict) -> dict:
        if self.ratio_range is not None:
            ratio = np.random.uniform(*self.ratio_range)
            scale = (int(self.scale[0] * ratio), int(self.scale[1] * ratio))
        else:
            (w0, h0), (w1, h1) = self.scale
            scale = (np.random.randint(min(w0, w1), max(w0, w1) + 1),
                     np.random.randint(min(h0, h1), max(h0, h1) + 1))
        return _resize_results(results, scale, self.keep_ratio)


@TRANSFORMS.register_module()
class PairedPad(BaseTransform):
    """Pad both dates (``pad_val``) and all maps (``seg_pad_val``) at the bottom/right.

    Args:
        size: Fixed ``(w, h)`` (mmcv's Pad convention) or one int.
        size_divisor: Pad H and W up to a multiple of it (after ``size``, if both given).
        pad_val: Image fill value (all bands).
        seg_pad_val: Label fill value (ignore index by default).
    """

    def __init__(self, size: int | Sequence[int] | None = None, size_divisor: int | None = None,
                 pad_val: float = 0, seg_pad_val: int = 255) -> None:
        if size is None and size_divisor is None:
            raise ValueError('PairedPad needs size or size_divisor')
        self.size = (size, size) if isinstance(size, int) else size
        self.size_divisor = size_divisor
        self.pad_val = pad_val
        self.seg_pad_val = seg_pad_val

    def transform(self, results: dict) -> dict:
        h, w = results['img'][0].shape[:2]
        th, tw = (self.size[1], self.size[0]) if self.size is not None else (h, w)
        if th < h or tw < w:
            raise ValueError(f'cannot pad a {h}x{w} image to the smaller {th}x{tw}')
        if self.size_divisor:
            d = self.size_divisor
            th, tw = -(-th // d) * d, -(-tw // d) * d

        def pad(a: np.ndarray, val: float) -> np.ndarray:
            widths = [(0, th - h), (0, tw - w)] + [(0, 0)] * (a.ndim - 2)
            return np.pad(a, widths, constant_values=val)

        _apply(results, lambda a: pad(a, self.pad_val), lambda a: pad(a, self.seg_pad_val))
        results['pad_shape'] = (th, tw)
        results['pad_fixed_size'] = self.size
        results['pad_size_divisor'] = self.size_divisor
        return results
