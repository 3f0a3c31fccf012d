"""How an image becomes a CLIP tower's input: one implementation for every mmrs path.

:mod:`tools.analysis.clip_embed` (embeddings of pictures) and :mod:`mmrs.apis.clip_encoder`
(query images and tiles of the archive search) both call these functions, so a picture gives
the same input tensor, to the bit, whichever path reads it.

The geometry is open_clip's evaluation transform (``preprocess_val`` of
``open_clip.create_model_and_transforms``, built by ``open_clip.transform.image_transform``
with ``is_train=False``, ``resize_mode='shortest'``): ``Resize(size, BICUBIC)`` of the shortest
side, ``CenterCrop(size)``, then ``Normalize(mean, std)``. Differences from that transform,
on purpose:

- images stay floating point on the 0–255 scale (PIL rounds the resized picture to 8 bits):
  a 12/16-bit raster is not quantised before the model; on 8-bit pictures the two agree to
  about a quarter of a grey level (mean absolute difference < 0.01 after normalisation);
- the bicubic kernel is torch's antialiased one (``F.interpolate(mode='bicubic',
  antialias=True)``: Keys' cubic with ``a = -0.5`` and a support widened by the scale when
  shrinking, which is PIL's ``Image.BICUBIC`` filter), clamped to 0–255 as an 8-bit picture
  would be (bicubic overshoots at edges).

Tiles of a tile archive (:mod:`mmrs.apis.clip_encoder`) are resized to the tower's size with the
same kernel (:func:`resize_exact`) but **not** cropped: a tile's footprint is its whole window,
so its whole content must reach the model. For a square tile and a square tower (the usual
case) this is exactly what :func:`resize_center_crop` does to a square picture, so a tile saved
as a picture and used as a query gives the tile's own input.
"""
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

#: Interpolation of every resize (recorded in archive identities).
INTERPOLATION = 'bicubic'
#: Percentiles (low, high) of the per-band ``'percentile'`` stretch of :func:`to_byte_range`.
PERCENTILES = (2.0, 98.0)
#: Stretches of :func:`to_byte_range`.
STRETCHES = ('none', 'percentile')


def linear_to_byte(img: np.ndarray, low: float | Sequence[float] | np.ndarray,
                   high: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """Map ``[low, high]`` (scalars or one value per band) linearly onto 0–255 and clip.

    Args:
        img: ``(H, W, C)`` raster values, any dtype.
        low, high: Values shown as 0 and 255 (``high > low``).

    Returns:
        ``float32`` ``(H, W, C)`` in 0–255; NaN (float nodata) becomes 0 (black).
    """
    lo = np.asarray(low, np.float64)
    hi = np.asarray(high, np.float64)
    if np.any(hi <= lo):
        raise ValueError(f'linear stretch needs high > low, got low={lo}, high={hi}')
    scale = (255.0 / (hi - lo)).astype(np.float32)
    out = (img.astype(np.float32) - lo.astype(np.float32)) * scale
    return np.clip(np.nan_to_num(out, nan=0.0), 0.0, 255.0).astype(np.float32)


def to_byte_range(img: np.ndarray, value_max: float | None = None,
                  stretch: str = 'none') -> np.ndarray:
    """``float32`` ``(H, W, C)`` image on the 0–255 scale the CLIP normalisation expects.

    Args:
        img: ``(H, W, C)`` raster values.
        value_max: Value shown as 255 with ``stretch='none'`` (default: the dtype's maximum,
            1.0 for floats).
        stretch: ``'none'`` (``[0, value_max]`` -> 0–255) or ``'percentile'`` (each band's
            :data:`PERCENTILES` of the image, NaN ignored, -> 0–255).

    Raises:
        ValueError: Unknown stretch or a non-positive ``value_max``.
    """
    if stretch not in STRETCHES:
        raise ValueError(f'stretch must be one of {STRETCHES}, got {stretch!r}')
    if stretch == 'percentile':
        low, high = np.nanpercentile(img.reshape(-1, img.shape[2]).astype(np.float32),
                                     PERCENTILES, axis=0)
        low = np.nan_to_num(low, nan=0.0)
        high = np.maximum(np.nan_to_num(high, nan=0.0), low + 1e-6)
        return linear_to_byte(img, low, high)
    if value_max is None:
        value_max = (float(np.iinfo(img.dtype).max) if np.issubdtype(img.dtype, np.integer)
                     else 1.0)
    if value_max <= 0:
        raise ValueError(f'value_max must be positive, got {value_max}')
    return linear_to_byte(img, 0.0, value_max)


def _interpolate(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic resize of ``(B, C, H, W)`` float to ``size``, clamped to 0–255."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x.float(), size=tuple(size), mode=INTERPOLATION, align_corners=False,
                         antialias=True).clamp_(0, 255)


def _batched(fn, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if x.dim() == 3:
        return fn(x[None], size)[0]
    if x.dim() != 4:
        raise ValueError(f'expected a (C, H, W) or (B, C, H, W) tensor, got {tuple(x.shape)}')
    return fn(x, size)


def short_side_size(height: int, width: int, size: tuple[int, int]) -> tuple[int, int]:
    """``(H, W)`` after open_clip's evaluation resize, before the center crop.

    A square target resizes the shortest side to it and the long side to
    ``int(target * long / short)`` (torchvision ``Resize(int)``); a non-square target scales
    by the larger ratio, as open_clip's ``ResizeKeepRatio``.
    """
    th, tw = size
    if th == tw:
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = th, int(th * long / short)
        return (new_long, new_short) if width <= height else (new_short, new_long)
    ratio = max(th / height, tw / width)
    return max(th, round(height * ratio)), max(tw, round(width * ratio))


def resize_center_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """open_clip's evaluation geometry on a ``(C, H, W)`` or ``(B, C, H, W)`` float tensor
    on the 0–255 scale: shortest side resized (:func:`short_side_size`, antialiased bicubic,
    clamped to 0–255), then the center crop (torchvision's rounding of the offsets)."""
    def run(batch: torch.Tensor, target: tuple[int, int]) -> torch.Tensor:
        th, tw = target
        nh, nw = short_side_size(batch.shape[2], batch.shape[3], target)
        batch = _interpolate(batch, (nh, nw))
        top, left = int(round((nh - th) / 2.0)), int(round((nw - tw) / 2.0))
        return batch[:, :, top:top + th, left:left + tw]
    return _batched(run, x, tuple(int(s) for s in size))


def resize_exact(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a ``(C, H, W)`` / ``(B, C, H, W)`` 0–255 tensor to exactly ``size`` (no crop;
    the aspect ratio changes if the shapes disagree) with the kernel of
    :func:`resize_center_crop`: what archive tiles get (see the module docstring)."""
    return _batched(_interpolate, x, tuple(int(s) for s in size))


def normalize(x: torch.Tensor, mean: Sequence[float] | torch.Tensor,
              std: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` per channel of a ``(C, H, W)`` / ``(B, C, H, W)`` tensor, the
    statistics on the 0–255 scale (a ``ClsDataPreprocessor``'s ``mean``/``std``)."""
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=x.device).flatten()
    std_t = torch.as_tensor(std, dtype=torch.float32, device=x.device).flatten()
    if mean_t.numel() != x.shape[-3] or std_t.numel() != x.shape[-3]:
        raise ValueError(f'{mean_t.numel()} mean / {std_t.numel()} std values for an image '
                         f'with {x.shape[-3]} channels')
    return (x.float() - mean_t.view(-1, 1, 1)) / std_t.view(-1, 1, 1)


def hwc_to_tensor(img: np.ndarray) -> torch.Tensor:
    """``(H, W, C)`` array -> contiguous ``float32`` ``(C, H, W)`` tensor."""
    return torch.from_numpy(np.ascontiguousarray(img.astype(np.float32, copy=False)
                                                 .transpose(2, 0, 1)))


def prepare_image(values: np.ndarray, size: tuple[int, int], mean: Sequence[float] | torch.Tensor,
                  std: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """A whole picture, already on the 0–255 scale (``(H, W, 3)``), as the tower's
    normalised ``(3, H, W)`` input: :func:`resize_center_crop` then :func:`normalize`.

    This is the one function both the embedding tool and the archive's image queries call.
    """
    return normalize(resize_center_crop(hwc_to_tensor(values), size), mean, std)


def model_mean_std(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's data-preprocessor ``mean``/``std`` on the 0–255 scale, flattened, on the
    CPU (OpenAI CLIP's when the model has none)."""
    from .clip_model import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
    pre = getattr(model, 'data_preprocessor', None)
    mean, std = getattr(pre, 'mean', None), getattr(pre, 'std', None)
    if mean is None or std is None:
        return torch.tensor(OPENAI_CLIP_MEAN) * 255, torch.tensor(OPENAI_CLIP_STD) * 255
    return (torch.as_tensor(mean).detach().flatten().float().cpu(),
            torch.as_tensor(std).detach().flatten().float().cpu())


__all__ = ['INTERPOLATION', 'PERCENTILES', 'STRETCHES', 'hwc_to_tensor', 'linear_to_byte',
           'model_mean_std', 'normalize', 'prepare_image', 'resize_center_crop', 'resize_exact',
           'short_side_size', 'to_byte_range']
