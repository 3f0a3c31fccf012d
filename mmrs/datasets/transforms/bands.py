"""Single-image multispectral loading and band selection (e.g. EuroSAT's 13-band GeoTIFFs).

mmcv's ``LoadImageFromFile`` decodes with OpenCV, which reads 1, 3 or 4 channels: a 13-band
Sentinel-2 GeoTIFF either fails or loses bands. :class:`LoadMultiBandImage` reads one image
through the one raster reader of mmrs (:func:`mmrs.datasets.io.read_raster`: rasterio for
``.tif``, dtype and every band kept) and :class:`SelectBands` picks the bands a model takes
(an RGB CLIP tower: three) and maps their values into the model's input range.

Channel order. mmcv's loader gives colour images in *BGR* order and mmpretrain's
``ClsDataPreprocessor(to_rgb=True)`` (the CLIP default) flips them to RGB. The loader here
keeps the file's band order, so to feed that same preprocessor a true-colour image list the
bands blue, green, red: for Sentinel-2 (B01..B12 with B8A after B08, as EuroSAT stores them)
``bands=(2, 3, 4)`` (B02, B03, B04); with ``to_rgb=False`` list them red first,
``(4, 3, 2)``.
"""
from collections.abc import Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from mmrs.registry import TRANSFORMS

from ..io import BACKENDS, read_raster


@TRANSFORMS.register_module()
class LoadMultiBandImage(BaseTransform):
    """Load ``results['img_path']`` (one image, any band count) as ``(H, W, C)``.

    Adds ``img`` (file band order, dtype kept unless ``to_float32``), ``img_shape``,
    ``ori_shape`` and ``geo_meta`` (CRS WKT, affine 6-tuple, nodata, band count, dtype).

    Args:
        bands: Optional 1-based band indices read from the file, in that order (reading only
            those bands is cheaper than :class:`SelectBands` after a full read).
        backend: ``'auto'`` (rasterio for ``.tif/.tiff``, OpenCV otherwise), ``'rasterio'``
            or ``'cv2'`` (OpenCV images come out RGB(A), not BGR).
        to_float32: Cast the image to float32.
        backend_args: mmengine fileio arguments for remote storage.

    Raises:
        FileNotFoundError / OSError: The file is missing or cannot be decoded (the message
            names it). ValueError: a band index the file does not have.
    """

    def __init__(self, bands: Sequence[int] | None = None, backend: str = 'auto',
                 to_float32: bool = False, backend_args: dict | None = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
        self.bands = None if bands is None else [int(b) for b in bands]
        self.backend = backend
        self.to_float32 = to_float32
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        path = results['img_path']
        if not isinstance(path, str):
            raise ValueError(f'img_path must be one path, got {path!r}')
        img, meta = read_raster(path, self.backend, self.bands, self.backend_args)
        results['img'] = img.astype(np.float32) if self.to_float32 else img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        results['geo_meta'] = meta
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(bands={self.bands}, backend={self.backend!r}, '
                f'to_float32={self.to_float32})')


@TRANSFORMS.register_module()
class SelectBands(BaseTransform):
    """Keep some bands of ``results[key]`` and map their values into a model's range.

    ``out = img[..., bands - 1]`` (1-based, in the order given), then either
    ``out * scale`` or a linear stretch of ``value_range = (lo, hi)`` onto ``0..255``
    (clipped), e.g. ``value_range=(0, 3000)`` shows Sentinel-2 L1C reflectance 0–0.3 (stored
    ×10000) as an 8-bit true-colour picture, the range CLIP saw in training.

    Args:
        bands: 1-based band indices (see the module note on the order).
        scale: Multiply the selected bands by this factor.
        value_range: ``(lo, hi)`` stretched onto ``0..255`` and clipped (not with ``scale``).
        out_dtype: ``'float32'`` (default) or ``'uint8'`` (rounded, clipped to 0..255).
        key: Results key of the image.

    Raises:
        ValueError: Bad arguments, or an image with fewer bands than asked (names the file).
    """

    def __init__(self, bands: Sequence[int], scale: float | None = None,
                 value_range: Sequence[float] | None = None, out_dtype: str = 'float32',
                 key: str = 'img') -> None:
        self.bands = [int(b) for b in bands]
        if not self.bands or min(self.bands) < 1:
            raise ValueError(f'bands must be non-empty 1-based indices, got {list(bands)}')
        if scale is not None and value_range is not None:
            raise ValueError('give scale or value_range, not both')
        if value_range is not None:
            lo, hi = (float(v) for v in value_range)
            if not hi > lo:
                raise ValueError(f'value_range must be (lo, hi) with hi > lo, got {value_range}')
            value_range = (lo, hi)
        if out_dtype not in ('float32', 'uint8'):
            raise ValueError(f"out_dtype must be 'float32' or 'uint8', got {out_dtype!r}")
        self.scale = None if scale is None else float(scale)
        self.value_range = value_range
        self.out_dtype = out_dtype
        self.key = key

    def transform(self, results: dict) -> dict:
        img = results[self.key]
        if img.ndim == 2:
            img = img[..., None]
        if max(self.bands) > img.shape[-1]:
            raise ValueError(f'{results.get("img_path")!r} has {img.shape[-1]} band(s); '
                             f'cannot select bands {self.bands}')
        out = img[..., [b - 1 for b in self.bands]].astype(np.float32)
        if self.scale is not None:
            out = out * self.scale
        if self.value_range is not None:
            lo, hi = self.value_range
            out = np.clip((out - lo) * (255.0 / (hi - lo)), 0.0, 255.0)
        if self.out_dtype == 'uint8':
            out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        results[self.key] = np.ascontiguousarray(out)
        results['bands'] = list(self.bands)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(bands={self.bands}, scale={self.scale}, '
                f'value_range={self.value_range}, out_dtype={self.out_dtype!r})')
