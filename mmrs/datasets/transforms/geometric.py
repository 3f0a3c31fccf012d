"""Paired geometric transforms: one random draw, applied to both dates and every label map.

Drawing the parameters once keeps pixel correspondence between the dates and the labels,
which change detection depends on. Images keep all their bands and their dtype (OpenCV
resizing is done in channel chunks and through float for dtypes it cannot interpolate).

Every transform funnels through :func:`_apply`, which also keeps the sample's geometry true:

- ``geo_meta[i]['transform']`` (affine ``a, b, c, d, e, f`` in rasterio order) of each date
  is updated so that pixel ``(col, row)`` of the transformed image maps to the world
  coordinate of the source pixel it came from (``None`` stays ``None``); the dicts are
  copied, and the untouched originals are kept once as ``ori_geo_meta`` for writing
  predictions at the original size;
- ``img_padding_size`` (pipeline padding, ``(left, right, top, bottom)`` in the current
  frame) and the flip / quarter-turn record stay in the normal form of
  :mod:`mmrs.structures.geometry`, so predictions (and labels) can be brought back to the
  original grid whatever order the transforms ran in;
- ``transformed_seg_fields`` lists the label maps that moved with the image.
"""
from collections.abc import Callable, Sequence

import cv2
import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from mmrs.registry import TRANSFORMS
from mmrs.structures.geometry import (compose_flips, flip_padding, rotate_padding)

_CV2_LINEAR_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)
_MAX_CHUNK = 256

#: A pixel map ``(a, b, c, d, e, f)``: source ``(x, y) = (a x' + b y' + c, d x' + e y' + f)``
#: for a point ``(x', y')`` of the transformed image, both in pixel-corner coordinates
#: (pixel ``(col, row)`` spans ``[col, col + 1) x [row, row + 1)``, as in rasterio).
PixelMap = tuple[float, float, float, float, float, float]
IDENTITY: PixelMap = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def compose_affine(outer: Sequence[float], inner: Sequence[float]) -> PixelMap:
    """``outer ∘ inner`` of two 6-term affines (``x → outer(inner(x))``)."""
    a, b, c, d, e, f = (float(v) for v in outer)
    ia, ib, ic, id_, ie, if_ = (float(v) for v in inner)
    return (a * ia + b * id_, a * ib + b * ie, a * ic + b * if_ + c,
            d * ia + e * id_, d * ib + e * ie, d * ic + e * if_ + f)


def flip_map(direction: str, h: int, w: int) -> PixelMap:
    """Pixel map of a flip of an ``h x w`` image (source coordinates of the flipped one)."""
    sx, cx = (-1.0, float(w)) if direction in ('horizontal', 'diagonal') else (1.0, 0.0)
    sy, cy = (-1.0, float(h)) if direction in ('vertical', 'diagonal') else (1.0, 0.0)
    return (sx, 0.0, cx, 0.0, sy, cy)


def rot90_map(k: int, h: int, w: int) -> PixelMap:
    """Pixel map of ``np.rot90(img, k)`` of an ``h x w`` image.

    One counter-clockwise turn puts source pixel ``(col, row) = (w - 1 - i, j)`` at
    ``(j, i)`` of the ``w x h`` result, i.e. ``x = w - y'``, ``y = x'``.
    """
    m = IDENTITY
    for _ in range(k % 4):
        m = compose_affine(m, (0.0, -1.0, float(w), 1.0, 0.0, 0.0))
        h, w = w, h
    return m


def _update_geo(results: dict, pixel_map: PixelMap) -> None:
    """Move every date's ``geo_meta`` transform along with the pixels (copies the dicts)."""
    metas = results.get('geo_meta')
    if not metas:
        return
    if 'ori_geo_meta' not in results:
        results['ori_geo_meta'] = [dict(m) if m is not None else None for m in metas]
    updated = []
    for meta in metas:
        if meta is not None:
            meta = dict(meta)
            if meta.get('transform') is not None:
                meta['transform'] = compose_affine(meta['transform'], pixel_map)
        updated.append(meta)
    results['geo_meta'] = updated


def _apply(results: dict,
           img_fn: Callable,
           seg_fn: Callable,
           pixel_map: PixelMap,
           padding_fn: Callable[[tuple], tuple] | None = None) -> None:
    """Apply ``img_fn`` to both images and ``seg_fn`` to every map in ``seg_fields``.

    Also moves the ``geo_meta`` transforms by ``pixel_map``, rewrites ``img_padding_size``
    with ``padding_fn`` and records the moved label maps in ``transformed_seg_fields``.
    """
    results['img'] = [np.ascontiguousarray(img_fn(img)) for img in results['img']]
    moved = results.setdefault('transformed_seg_fields', [])
    for key in results.get('seg_fields', []):
        results[key] = np.ascontiguousarray(seg_fn(results[key]))
        if key not in moved:
            moved.append(key)
    results['img_shape'] = results['img'][0].shape[:2]
    _update_geo(results, pixel_map)
    if padding_fn is not None and results.get('img_padding_size') is not None:
        results['img_padding_size'] = tuple(int(v) for v in padding_fn(
            tuple(results['img_padding_size'])))


def _cv2_resize(arr: np.ndarray, size: tuple[int, int], interpolation: str) -> np.ndarray:
    """``(H, W, c)`` resize; 'nearest' picks the source pixel under each target centre.

    OpenCV's ``INTER_NEAREST`` (mmcv's 'nearest') takes ``floor(i * scale)``, half a pixel
    off the centre-based mapping that bilinear resizing and the geo transform use, so label
    maps would drift from the image; ``INTER_NEAREST_EXACT`` takes
    ``floor((i + 0.5) * scale)``.
    """
    if interpolation == 'nearest':
        out = cv2.resize(arr, size, interpolation=cv2.INTER_NEAREST_EXACT)
    else:
        out = mmcv.imresize(arr, size, interpolation=interpolation)
    return out.reshape(size[1], size[0], -1)


def resize_array(arr: np.ndarray, size: tuple[int, int], interpolation: str) -> np.ndarray:
    """Resize ``(H, W)`` or ``(H, W, C)`` to ``size=(w, h)`` for any band count and dtype."""
    if arr.ndim == 2:
        return resize_array(arr[..., None], size, interpolation)[..., 0]
    dtype = arr.dtype
    work = arr
    if interpolation != 'nearest' and dtype.type not in _CV2_LINEAR_DTYPES:
        work = arr.astype(np.float64)
    elif interpolation == 'nearest' and dtype == np.bool_:
        work = arr.astype(np.uint8)
    chunks = [
        _cv2_resize(np.ascontiguousarray(work[..., i:i + _MAX_CHUNK]), size, interpolation)
        for i in range(0, work.shape[2], _MAX_CHUNK)
    ]
    out = np.concatenate(chunks, axis=2)
    if out.dtype != dtype:
        out = np.rint(out) if np.issubdtype(dtype, np.integer) else out
        out = out.astype(dtype)
    return out


@TRANSFORMS.register_module()
class PairedRandomFlip(BaseTransform):
    """Flip both dates and all label maps the same way.

    ``flip`` / ``flip_direction`` record the net flip of the sample: a second flip composes
    with an earlier one (horizontal then vertical is diagonal), and a flip after quarter
    turns is recorded as a flip before them (turns reversed), see
    :mod:`mmrs.structures.geometry`.

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
        before = results.get('flip_direction') if results.get('flip') else None
        if direction is not None:
            h, w = results['img'][0].shape[:2]
            _apply(results, lambda a: mmcv.imflip(a, direction),
                   lambda a: mmcv.imflip(a, direction), flip_map(direction, h, w),
                   lambda pad: flip_padding(pad, direction))
            k = int(results.get('rotate90_k') or 0) % 4
            if k and direction != 'diagonal':  # F R^k = R^-k F for a one-axis flip F
                results['rotate90_k'] = (-k) % 4
        net = compose_flips(before, direction)
        results['flip'] = net is not None
        results['flip_direction'] = net
        return results


@TRANSFORMS.register_module()
class PairedRandomRotate90(BaseTransform):
    """Rotate both dates and all label maps by the same multiple of 90° (exact, no resampling).

    Turns are counter-clockwise (``np.rot90``); ``rotate90_k`` records the net number of
    turns of the sample (added to an earlier rotation's).

    Args:
        prob: Probability of rotating; the number of quarter turns (1–3) is then uniform.
    """

    def __init__(self, prob: float = 0.5) -> None:
        self.prob = prob

    def transform(self, results: dict) -> dict:
        k = int(np.random.randint(1, 4)) if np.random.rand() < self.prob else 0
        if k:
            h, w = results['img'][0].shape[:2]
            _apply(results, lambda a: np.rot90(a, k), lambda a: np.rot90(a, k),
                   rot90_map(k, h, w), lambda pad: rotate_padding(pad, k))
        results['rotate90_k'] = (int(results.get('rotate90_k') or 0) + k) % 4
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

        def crop_pad(pad: tuple) -> tuple:  # padding left inside the window
            left, right, top, bottom = pad
            cw, ch = x1 - x0, y1 - y0
            return (min(max(left - x0, 0), cw), min(max(x1 - (w - right), 0), cw),
                    min(max(top - y0, 0), ch), min(max(y1 - (h - bottom), 0), ch))

        _apply(results, lambda a: a[y0:y1, x0:x1], lambda a: a[y0:y1, x0:x1],
               (1.0, 0.0, float(x0), 0.0, 1.0, float(y0)), crop_pad)
        results['crop_bbox'] = bbox
        return results


def _resize_results(results: dict, scale: tuple[int, int], keep_ratio: bool) -> dict:
    h, w = results['img'][0].shape[:2]
    new_w, new_h = mmcv.rescale_size((w, h), scale) if keep_ratio else scale
    size = (int(new_w), int(new_h))
    sx, sy = w / size[0], h / size[1]  # source pixels per target pixel

    def scale_pad(pad: tuple) -> tuple:
        left, right, top, bottom = pad
        return (round(left / sx), round(right / sx), round(top / sy), round(bottom / sy))

    # pixel-centre aligned scaling (OpenCV's convention) is a pure scale of corner coordinates
    _apply(results, lambda a: resize_array(a, size, 'bilinear'),
           lambda a: resize_array(a, size, 'nearest'), (sx, 0.0, 0.0, 0.0, sy, 0.0), scale_pad)
    results['scale'] = size
    results['scale_factor'] = (size[0] / w, size[1] / h)
    results['keep_ratio'] = keep_ratio
    return results


@TRANSFORMS.register_module()
class PairedResize(BaseTransform):
    """Resize both dates (bilinear) and all label maps (nearest) to the same size.

    Label maps take the source pixel under each target pixel's centre, the mapping that
    bilinear resizing and the updated geo transform use too.

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

    The padding is recorded as ``img_padding_size`` = ``(left, right, top, bottom)``, apart
    from ``img_shape`` (the padded size), as mmseg does: the detector cuts it off its
    logits before resizing them to ``ori_shape``, so a padded test image is not stretched,
    and the metrics cut it off label maps that were padded with the image. Pixel
    ``(col, row)`` keeps its world coordinate (the padding extends the grid).

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

        left, right, top, bottom = results.get('img_padding_size') or (0, 0, 0, 0)
        _apply(results, lambda a: pad(a, self.pad_val), lambda a: pad(a, self.seg_pad_val),
               IDENTITY)
        results['img_padding_size'] = (int(left), int(right) + tw - w, int(top),
                                       int(bottom) + th - h)
        results['pad_shape'] = (th, tw)
        results['pad_fixed_size'] = self.size
        results['pad_size_divisor'] = self.size_divisor
        return results
