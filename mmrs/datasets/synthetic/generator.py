"""Bitemporal synthetic pairs: simulated land-cover change, nuisance effects, exact labels.

Date 2 is date 1 with real changes (buildings built or demolished, new roads, vegetation
cleared) edited into the class map, so labels are exact: a pixel is changed iff its class
differs. Both dates are then rendered with the same textures but independent radiometry
(illumination, per-band gain, season, blur, sensor noise), which must not count as change:
a plain ``|A - B|`` threshold is therefore not a good detector, a learned model is needed.
"""
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from rasterio.transform import Affine, from_origin

from .changes import simulate_changes
from .scene import draw_layout, draw_textures, render, smooth_noise

DEFAULT_CRS = 'EPSG:32633'  # WGS 84 / UTM zone 33N
PIXEL_SIZE = 0.5  # metres
SeedLike = int | Sequence[int] | np.random.SeedSequence


@dataclass
class SyntheticPair:
    """One generated sample; class maps are returned so tests can check the labels.

    Attributes:
        img_from, img_to: ``(H, W, C)`` uint8 images of date 1 and date 2 (C = 3 or 4).
        class_from, class_to: ``(H, W)`` uint8 land-cover ids 1..5 of each date.
        change: ``(H, W)`` uint8, 1 where ``class_from != class_to``.
        label_from, label_to: ``(H, W)`` uint8 semantic labels, 0 where unchanged.
        crs: CRS string understood by rasterio; shared by both dates.
        transform: Affine pixel-to-CRS transform; shared by both dates.
    """

    img_from: np.ndarray
    img_to: np.ndarray
    class_from: np.ndarray
    class_to: np.ndarray
    change: np.ndarray
    label_from: np.ndarray
    label_to: np.ndarray
    crs: str
    transform: Affine


def acquire(reflectance: np.ndarray, rng: np.random.Generator, bands: int) -> np.ndarray:
    """Simulate one acquisition: illumination, per-band gain, haze, blur, noise → uint8.

    Each date gets its own draw, so unchanged pixels differ between dates by a smooth global
    shift plus noise (the nuisance a change detector has to ignore).
    """
    img = reflectance[..., :bands]
    gain = rng.uniform(0.82, 1.18) * rng.uniform(0.92, 1.08, bands)
    # Uneven illumination (thin haze, sun/view geometry): a smooth ±8 % gain field.
    field = 1 + rng.uniform(0, 0.16) * (smooth_noise(rng, img.shape[0], img.shape[0]) - 0.5)
    img = img * field[..., None] * gain + rng.uniform(-0.03, 0.05)
    sigma = rng.uniform(0.0, 0.9)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    img = img + rng.normal(0, rng.uniform(0.008, 0.025), img.shape).astype(np.float32)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def generate_pair(seed: SeedLike, size: int = 128, bands: int = 3, *, allow_change: bool = True,
                  origin: tuple[float, float] = (500_000.0, 5_000_000.0),
                  pixel_size: float = PIXEL_SIZE, crs: str = DEFAULT_CRS) -> SyntheticPair:
    """Generate one bitemporal pair with exact binary and semantic change labels.

    Args:
        seed: Anything :class:`numpy.random.SeedSequence` accepts; the same seed always gives
            identical arrays (NumPy's PCG64 and OpenCV drawing are deterministic).
        size: Tile height and width in pixels.
        bands: 3 (RGB) or 4 (RGB + NIR, where vegetation is bright).
        allow_change: ``False`` gives a pair with only nuisance differences (no change).
        origin: CRS coordinates (x, y) of the top-left corner.
        pixel_size: Ground sampling distance in CRS units (metres for UTM).
        crs: Projected CRS of the tile.
    """
    if bands not in (3, 4):
        raise ValueError(f'bands must be 3 or 4, got {bands}')
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    rng = np.random.default_rng(seq)
    before = draw_layout(rng, size)
    after = simulate_changes(before, rng) if allow_change else before.copy()
    tex = draw_textures(rng, size)
    season = rng.uniform(-1, 1)
    season_to = np.clip(season + rng.choice((-1, 1)) * rng.uniform(0.3, 1.2), -1, 1)
    shadow = rng.integers(1, 4, 2)
    img_from = acquire(render(before, tex, season, int(shadow[0])), rng, bands)
    img_to = acquire(render(after, tex, season_to, int(shadow[1])), rng, bands)
    change = before.classes != after.classes
    return SyntheticPair(
        img_from=img_from, img_to=img_to,
        class_from=before.classes, class_to=after.classes,
        change=change.astype(np.uint8),
        label_from=np.where(change, before.classes, 0).astype(np.uint8),
        label_to=np.where(change, after.classes, 0).astype(np.uint8),
        crs=crs, transform=from_origin(*origin, pixel_size, pixel_size))
