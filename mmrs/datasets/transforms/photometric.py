"""Per-date photometric transforms and date swapping.

Unlike the geometric transforms, photometric randomness is drawn independently for each
date: real image pairs differ in illumination, season and sensor response, and a change
detector must not learn that "brightness differs" means "changed".
"""
from collections.abc import Sequence

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from mmrs.registry import TRANSFORMS


@TRANSFORMS.register_module()
class BitemporalPhotoMetricDistortion(BaseTransform):
    """mmseg's PhotoMetricDistortion applied to each date with its own random draws.

    Each step happens with probability 0.5: brightness (add ``U(-delta, delta)``), contrast
    (multiply by ``U(contrast_range)``, before or after the colour steps), saturation and
    hue. Saturation and hue only apply to 3-band uint8 (RGB) images; for other band counts
    or dtypes only brightness and contrast are used, with the brightness delta scaled from
    the 0–255 range to the value range of the data (``value_range``, else the dtype range
    for integers, else the image's own min–max for floats). The dtype is kept; integer
    results are clipped to the dtype range.

    Args:
        brightness_delta: Maximum brightness shift, in 0–255 units.
        contrast_range: Range of the contrast factor.
        saturation_range: Range of the saturation factor.
        hue_delta: Maximum hue shift (OpenCV hue units, 0–180).
        value_range: Optional ``(low, high)`` of the data, e.g. ``(0, 4095)`` for 12-bit data.
    """

    def __init__(self, brightness_delta: float = 32,
                 contrast_range: Sequence[float] = (0.5, 1.5),
                 saturation_range: Sequence[float] = (0.5, 1.5), hue_delta: int = 18,
                 value_range: Sequence[float] | None = None) -> None:
        self.brightness_delta = brightness_delta
        self.contrast_lower, self.contrast_upper = contrast_range
        self.saturation_lower, self.saturation_upper = saturation_range
        self.hue_delta = hue_delta
        self.value_range = tuple(value_range) if value_range is not None else None

    def _range(self, img: np.ndarray) -> tuple[float, float]:
        if self.value_range is not None:
            return self.value_range
        if np.issubdtype(img.dtype, np.integer):
            info = np.iinfo(img.dtype)
            return float(info.min), float(info.max)
        lo, hi = float(np.nanmin(img)), float(np.nanmax(img))
        return (lo, hi) if hi > lo else (lo, lo + 1.0)

    def _contrast(self, img: np.ndarray, low: float) -> np.ndarray:
        if np.random.randint(2):
            alpha = np.random.uniform(self.contrast_lower, self.contrast_upper)
            img = low + (img - low) * alpha
        return img

    def _saturation_hue(self, img: np.ndarray) -> np.ndarray:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        if np.random.randint(2):
            alpha = np.random.uniform(self.saturation_lower, self.saturation_upper)
            hsv[..., 1] = np.clip(hsv[..., 1] * alpha, 0, 255).astype(np.uint8)
        if np.random.randint(2):
            shift = np.random.randint(-self.hue_delta, self.hue_delta + 1)
            hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + shift) % 180).astype(np.uint8)
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)

    def distort(self, img: np.ndarray) -> np.ndarray:
        """Distort one date's ``(H, W, C)`` image with fresh random draws."""
        low, high = self._range(img)
        out = img.astype(np.float32)
        if np.random.randint(2):
            delta = np.random.uniform(-self.brightness_delta, self.brightness_delta)
            out = out + delta * (high - low) / 255.0
        mode = np.random.randint(2)
        if mode == 1:
            out = self._contrast(out, low)
        if img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3:
            out = self._saturation_hue(np.clip(np.rint(out), 0, 255).astype(np.uint8))
            out = out.astype(np.float32)
        if mode == 0:
            out = self._contrast(out, low)
        if np.issubdtype(img.dtype, np.integer):
            info = np.iinfo(img.dtype)
            return np.clip(np.rint(out), info.min, info.max).astype(img.dtype)
        return out.astype(img.dtype)

    def transform(self, results: dict) -> dict:
        results['img'] = [self.distort(img) for img in results['img']]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(brightness_delta={self.brightness_delta}, '
                f'contrast_range=({self.contrast_lower}, {self.contrast_upper}), '
                f'saturation_range=({self.saturation_lower}, {self.saturation_upper}), '
                f'hue_delta={self.hue_delta}, value_range={self.value_range})')


@TRANSFORMS.register_module()
class ExchangeTime(BaseTransform):
    """Swap the two dates with probability ``prob`` (augmentation for symmetric change).

    Swaps the images, ``img_path``, ``geo_meta``, ``gt_seg_map_from``/``_to`` and
    ``seg_map_path_from``/``_to``; the binary change map is symmetric and stays as is.
    Sets ``time_exchanged``.

    Args:
        prob: Probability of swapping.
    """

    _PAIRS = (('gt_seg_map_from', 'gt_seg_map_to'), ('seg_map_path_from', 'seg_map_path_to'))

    def __init__(self, prob: float = 0.5) -> None:
        self.prob = prob

    def transform(self, results: dict) -> dict:
        swap = bool(np.random.rand() < self.prob)
        results['time_exchanged'] = swap
        if not swap:
            return results
        for key in ('img', 'img_path', 'geo_meta'):
            if isinstance(results.get(key), (list, tuple)):
                results[key] = list(results[key])[::-1]
        fields = results.get('seg_fields', [])
        for a, b in self._PAIRS:
            if a in results or b in results:
                had_a, had_b = a in results, b in results
                va, vb = results.pop(a, None), results.pop(b, None)
                if had_b:
                    results[a] = vb
                if had_a:
                    results[b] = va
                if a in fields or b in fields:
                    names = {a: b, b: a}
                    results['seg_fields'] = [names.get(f, f) for f in fields]
                    fields = results['seg_fields']
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob})'
