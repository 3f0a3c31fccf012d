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

from .loading import effective_nodata


@TRANSFORMS.register_module()
class BitemporalPhotoMetricDistortion(BaseTransform):
    """mmseg's PhotoMetricDistortion applied to each date with its own random draws.

    Each step happens with probability 0.5: brightness (add ``U(-delta, delta)``), contrast
    (scale by ``U(contrast_range)`` about the low end of the value range, before or after
    the colour steps), saturation and hue. Saturation and hue only apply to 3-band uint8
    (RGB) images; other band counts and dtypes get brightness and contrast.

    Value range, per band: ``value_range`` when given; 0–255 for uint8 (exactly mmseg's
    behaviour); otherwise measured per band on the valid pixels of the date (finite and not
    nodata), so neither the dtype's extremes nor a nodata value such as -9999 stretch it.
    ``brightness_delta`` is in 0–255 units and scaled to each band's range; contrast pivots
    on the band's low end (for uint8: 0, as in mmseg). A band without spread gets no
    brightness shift.

    Nodata values (band values equal to the date's nodata value, ``results['nodata']``
    else ``geo_meta[i]['nodata']``; NaN for floats) are left out of the range and keep their
    value, so nodata pixels stay nodata. The dtype is kept; integer results are rounded and
    clipped to the dtype range (``value_range`` sets the scale, it does not clip).

    Args:
        brightness_delta: Maximum brightness shift, in 0–255 units.
        contrast_range: Range of the contrast factor.
        saturation_range: Range of the saturation factor.
        hue_delta: Maximum hue shift (OpenCV hue units, 0–180).
        value_range: Optional ``(low, high)`` of the data for every band, e.g. ``(0, 4095)``
            for 12-bit data: brightness is scaled to it and contrast pivots on ``low``.
    """

    def __init__(self, brightness_delta: float = 32,
                 contrast_range: Sequence[float] = (0.5, 1.5),
                 saturation_range: Sequence[float] = (0.5, 1.5), hue_delta: int = 18,
                 value_range: Sequence[float] | None = None) -> None:
        self.brightness_delta = brightness_delta
        self.contrast_lower, self.contrast_upper = contrast_range
        self.saturation_lower, self.saturation_upper = saturation_range
        self.hue_delta = hue_delta
        if value_range is not None:
            value_range = (float(value_range[0]), float(value_range[1]))
            if not value_range[1] > value_range[0]:
                raise ValueError(f'value_range must be (low, high) with high > low, got '
                                 f'{value_range}')
        self.value_range = value_range

    # ------------------------------------------------------------------ draws
    def draw(self, colour: bool) -> dict:
        """Draw one date's parameters (mmseg's order of draws); ``None`` = step skipped.

        Returns ``dict(brightness, contrast, contrast_first, saturation, hue)``; the colour
        steps are drawn only when ``colour`` (3-band uint8).
        """
        params = dict(brightness=None, contrast=None, saturation=None, hue=None)
        if np.random.randint(2):
            params['brightness'] = np.random.uniform(-self.brightness_delta,
                                                     self.brightness_delta)
        params['contrast_first'] = bool(np.random.randint(2))
        if params['contrast_first']:
            params['contrast'] = self._draw_contrast()
        if colour:
            if np.random.randint(2):
                params['saturation'] = np.random.uniform(self.saturation_lower,
                                                         self.saturation_upper)
            if np.random.randint(2):
                params['hue'] = np.random.randint(-self.hue_delta, self.hue_delta + 1)
        if not params['contrast_first']:
            params['contrast'] = self._draw_contrast()
        return params

    def _draw_contrast(self) -> float | None:
        if np.random.randint(2):
            return np.random.uniform(self.contrast_lower, self.contrast_upper)
        return None

    # ------------------------------------------------------------------ application
    def band_ranges(self, img: np.ndarray,
                    invalid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` per band, each ``(C,)`` float64 (see the class docstring).

        Args:
            img: ``(H, W, C)`` image.
            invalid: ``(H, W, C)`` bool, True for values left out (nodata, NaN), or None.
        """
        bands = img.shape[2]
        if self.value_range is not None:
            return (np.full(bands, self.value_range[0]), np.full(bands, self.value_range[1]))
        if img.dtype == np.uint8:
            return np.zeros(bands), np.full(bands, 255.0)
        low, high = np.zeros(bands), np.zeros(bands)
        for c in range(bands):
            band = img[..., c] if invalid is None else img[..., c][~invalid[..., c]]
            band = band[np.isfinite(band)] if band.dtype.kind == 'f' else band
            if band.size:
                low[c], high[c] = float(band.min()), float(band.max())
        return low, high

    @staticmethod
    def invalid_values(img: np.ndarray, nodata: float | None) -> np.ndarray | None:
        """``(H, W, C)`` bool: band values equal to ``nodata`` (and NaN for floats).

        Per value rather than per pixel: a band that is nodata in an otherwise valid pixel
        is neither measured nor changed either.
        """
        floating = img.dtype.kind == 'f'
        if nodata is None:
            return np.isnan(img) if floating else None
        if np.isnan(nodata):
            return np.isnan(img) if floating else None
        invalid = img == nodata
        return invalid | np.isnan(img) if floating else invalid

    def apply(self, img: np.ndarray, params: dict, nodata: float | None = None) -> np.ndarray:
        """Distort one ``(H, W, C)`` (or ``(H, W)``) image with the drawn ``params``.

        Deterministic given ``params`` (see :meth:`draw`), so tests can check values by hand.
        Nodata values (and NaN) keep their value.
        """
        squeeze = img.ndim == 2
        img3 = img[..., None] if squeeze else img
        invalid = self.invalid_values(img3, nodata)
        if invalid is not None and invalid.all():
            return img.copy()
        low, high = self.band_ranges(img3, invalid)
        out = img3.astype(np.float64)
        if params.get('brightness') is not None:
            out = out + params['brightness'] * (high - low) / 255.0
        if params.get('contrast_first') and params.get('contrast') is not None:
            out = low + (out - low) * params['contrast']
        colour = img3.dtype == np.uint8 and img3.shape[2] == 3
        if colour and (params.get('saturation') is not None or params.get('hue') is not None):
            out = self._saturation_hue(np.clip(np.rint(out), 0, 255).astype(np.uint8),
                                       params).astype(np.float64)
        if not params.get('contrast_first') and params.get('contrast') is not None:
            out = low + (out - low) * params['contrast']
        with np.errstate(invalid='ignore'):
            out = self._to_dtype(out, img3.dtype)
        if invalid is not None:
            out[invalid] = img3[invalid]
        return out[..., 0] if squeeze else out

    @staticmethod
    def _to_dtype(out: np.ndarray, dtype: np.dtype) -> np.ndarray:
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            return np.clip(np.rint(out), info.min, info.max).astype(dtype)
        return out.astype(dtype)

    @staticmethod
    def _saturation_hue(img: np.ndarray, params: dict) -> np.ndarray:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        if params.get('saturation') is not None:
            hsv[..., 1] = np.clip(hsv[..., 1] * params['saturation'], 0, 255).astype(np.uint8)
        if params.get('hue') is not None:
            hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + params['hue']) % 180).astype(
                np.uint8)
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)

    def distort(self, img: np.ndarray, nodata: float | None = None) -> np.ndarray:
        """Distort one date's image with fresh random draws."""
        colour = img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        return self.apply(img, self.draw(colour), nodata)

    def transform(self, results: dict) -> dict:
        nodata = effective_nodata(results)
        results['img'] = [self.distort(img, value) for img, value in zip(results['img'], nodata)]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(brightness_delta={self.brightness_delta}, '
                f'contrast_range=({self.contrast_lower}, {self.contrast_upper}), '
                f'saturation_range=({self.saturation_lower}, {self.saturation_upper}), '
                f'hue_delta={self.hue_delta}, value_range={self.value_range})')


@TRANSFORMS.register_module()
class ExchangeTime(BaseTransform):
    """Swap the two dates with probability ``prob`` (augmentation for symmetric change).

    Swaps the images, ``img_path``, ``geo_meta`` (and ``ori_geo_meta``, the untransformed
    grid kept by the geometric transforms), ``gt_seg_map_from``/``_to`` and
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
        for key in ('img', 'img_path', 'geo_meta', 'ori_geo_meta'):
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
