"""Procedural land-cover scenes: class layout, building footprints and rendering.

A scene is a land-cover class map plus a building-id map (so each roof keeps its colour across
dates). Everything is drawn with numpy and OpenCV primitives so a 128×128 scene takes a few
milliseconds; the change simulation in :mod:`.generator` edits these maps and renders both
dates with the same textures, so only the edited pixels (and nuisance effects) differ.
"""
from dataclasses import dataclass, field

import cv2
import numpy as np

from .spec import (BUILDING, GROUND, LAND_COVER_CLASSES, ROAD, SEMANTIC_CLASSES,  # noqa: F401
                   SEMANTIC_PALETTE, VEGETATION, WATER)

# Surface reflectance-like colours in [0, 1]: R, G, B, NIR (vegetation bright in NIR).
_SOIL = np.array([0.56, 0.45, 0.34, 0.36])
_DRY_GRASS = np.array([0.50, 0.52, 0.32, 0.42])
_TREES = np.array([0.17, 0.33, 0.14, 0.62])
_WATER = np.array([0.10, 0.20, 0.32, 0.04])
_ROAD = np.array([0.42, 0.42, 0.44, 0.22])
_ROOFS = np.array([
    [0.66, 0.30, 0.24, 0.30],  # red tiles
    [0.70, 0.70, 0.70, 0.33],  # concrete
    [0.30, 0.30, 0.33, 0.20],  # dark bitumen
    [0.36, 0.46, 0.62, 0.28],  # blue metal
    [0.86, 0.86, 0.83, 0.40],  # white membrane
    [0.52, 0.36, 0.26, 0.30],  # brown tiles
])


@dataclass
class Scene:
    """Land cover of one date.

    Attributes:
        classes: ``(H, W)`` uint8 class ids 1..5 (see :data:`LAND_COVER_CLASSES`).
        building_ids: ``(H, W)`` int32, 0 off-building, else an index into ``roof_colours``.
        roof_colours: ``(N, 4)`` float RGB+NIR colour of each building id (row 0 unused).
        roof_axis: ``(N,)`` 0/1: ridge along x or y, used for two-tone roof shading.
    """

    classes: np.ndarray
    building_ids: np.ndarray
    roof_colours: np.ndarray = field(default_factory=lambda: np.zeros((1, 4)))
    roof_axis: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int8))

    def copy(self) -> 'Scene':
        """Deep copy, so the second date can be edited without touching the first."""
        return Scene(self.classes.copy(), self.building_ids.copy(), self.roof_colours.copy(),
                     self.roof_axis.copy())


def smooth_noise(rng: np.random.Generator, size: int, scale: float,
                 octaves: int = 2) -> np.ndarray:
    """Fractal value noise in ``[0, 1]``, features about ``scale`` pixels wide.

    Random coarse grids are upsampled bicubically (fast, unlike a large Gaussian filter) and
    summed over octaves with halving amplitude.
    """
    out = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        cells = max(2, int(round(size / max(scale, 1.0))) + 2)
        grid = rng.random((cells, cells), dtype=np.float32)
        out += amp * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp, scale = amp * 0.5, scale / 2
    out /= total
    lo, hi = out.min(), out.max()
    return (out - lo) / max(hi - lo, 1e-6)


def draw_polyline(mask: np.ndarray, rng: np.random.Generator, width: int,
                  start: tuple[float, float], end: tuple[float, float],
                  bend: float) -> None:
    """Draw a slightly curved line (quadratic Bézier, ``bend`` px off-axis) into ``mask``."""
    p0, p2 = np.array(start), np.array(end)
    normal = np.array([p0[1] - p2[1], p2[0] - p0[0]])
    normal /= max(np.linalg.norm(normal), 1e-6)
    p1 = (p0 + p2) / 2 + normal * bend * rng.uniform(-1, 1)
    t = np.linspace(0, 1, 24)[:, None]
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2
    cv2.polylines(mask, [np.round(pts).astype(np.int32)], False, 1, thickness=width)


def _river(rng: np.random.Generator, size: int) -> np.ndarray:
    """A meandering river crossing the tile from one edge to the opposite one."""
    mask = np.zeros((size, size), np.uint8)
    s = np.linspace(-0.1, 1.1, 64) * size
    phase, period = rng.uniform(0, 2 * np.pi), rng.uniform(0.6, 1.5) * size
    offset = size * rng.uniform(0.2, 0.8) + size * rng.uniform(0.05, 0.15) * np.sin(
        2 * np.pi * s / period + phase)
    pts = np.stack([offset, s], 1) if rng.random() < 0.5 else np.stack([s, offset], 1)
    width = int(rng.integers(max(3, size // 32), max(5, size // 12)))
    cv2.polylines(mask, [np.round(pts).astype(np.int32)], False, 1, thickness=width)
    return mask.astype(bool)


def _pond(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth irregular water blob (noise thresholded inside a radial falloff)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    cy, cx = rng.uniform(0.2, 0.8, 2)
    radius = rng.uniform(0.1, 0.22)
    dist = np.hypot(yy - cy, xx - cx) / radius
    return (1.0 - dist + 0.6 * (smooth_noise(rng, size, size / 6) - 0.5)) > 0.3


def footprint(rng: np.random.Generator, size: int, min_side: int,
              max_side: int) -> tuple[np.ndarray, int, int]:
    """A rectangle (axis-aligned or slightly rotated) rasterised in its own bounding box.

    Returns:
        The boolean patch and the row/column of its top-left corner in the tile.
    """
    w, h = rng.integers(min_side, max_side + 1, 2)
    angle = 0.0 if rng.random() < 0.6 else float(rng.uniform(-20, 20))
    cx, cy = rng.uniform(0, size, 2)
    pts = cv2.boxPoints(((float(cx), float(cy)), (float(w), float(h)), angle))
    x0, y0 = np.floor(pts.min(0)).astype(int)
    patch_w, patch_h = np.ceil(pts.max(0)).astype(int) - (x0, y0) + 1
    patch = np.zeros((patch_h, patch_w), np.uint8)
    cv2.fillPoly(patch, [np.round(pts - (x0, y0)).astype(np.int32)], 1)
    return patch.astype(bool), int(y0), int(x0)


def place_buildings(scene: Scene, rng: np.random.Generator, count: int,
                    allowed: tuple[int, ...] = (GROUND,), clearance: int = 2,
                    centre: tuple[float, float] | None = None) -> int:
    """Try to add ``count`` buildings on ``allowed`` land cover, keeping ``clearance`` px free.

    Candidates overlapping the tile border, non-allowed classes or the clearance zone of other
    buildings, roads and water are rejected, so footprints never touch each other. When
    ``centre`` is given, candidates are drawn near it (a new development cluster).

    Returns:
        How many buildings were placed.
    """
    size = scene.classes.shape[0]
    side = max(4, size // 16), max(8, size // 5)
    free = np.isin(scene.classes, allowed)
    blocked = cv2.dilate((~free).astype(np.uint8), np.ones((2 * clearance + 1,) * 2, np.uint8))
    placed = 0
    for _ in range(count * 6):
        if placed == count:
            break
        patch, y0, x0 = footprint(rng, size, *side)
        if centre is not None:
            y0 = int(centre[0] + rng.normal(0, size / 8)) - patch.shape[0] // 2
            x0 = int(centre[1] + rng.normal(0, size / 8)) - patch.shape[1] // 2
        y1, x1 = y0 + patch.shape[0], x0 + patch.shape[1]
        if y0 < 1 or x0 < 1 or y1 > size - 1 or x1 > size - 1:
            continue
        if blocked[y0:y1, x0:x1][patch].any():
            continue
        new_id = len(scene.roof_colours)
        colour = _ROOFS[rng.integers(len(_ROOFS))] * rng.uniform(0.9, 1.1)
        scene.roof_colours = np.vstack([scene.roof_colours, np.clip(colour, 0, 1)])
        scene.roof_axis = np.append(scene.roof_axis, np.int8(rng.integers(2)))
        scene.classes[y0:y1, x0:x1][patch] = BUILDING
        scene.building_ids[y0:y1, x0:x1][patch] = new_id
        pad = clearance
        blocked[max(y0 - pad, 0):y1 + pad, max(x0 - pad, 0):x1 + pad] = 1
        placed += 1
    return placed


def draw_layout(rng: np.random.Generator, size: int) -> Scene:
    """Draw the first-date land cover: ground, vegetation, water, a road grid and buildings."""
    classes = np.full((size, size), GROUND, np.uint8)
    veg_frac = rng.uniform(0.08, 0.35)
    veg = smooth_noise(rng, size, size / rng.uniform(4, 8))
    classes[veg > np.quantile(veg, 1 - veg_frac)] = VEGETATION
    water_kind = rng.random()
    if water_kind < 0.3:
        classes[_river(rng, size)] = WATER
    elif water_kind < 0.55:
        classes[_pond(rng, size)] = WATER
    roads = np.zeros((size, size), np.uint8)
    if rng.random() < 0.85:
        for vertical in (False, True):
            for _ in range(int(rng.integers(0 if vertical else 1, 3))):
                a, b = rng.uniform(0.1, 0.9, 2) * size
                ends = ((a, -2.0), (b, size + 1.0)) if vertical else ((-2.0, a), (size + 1.0, b))
                draw_polyline(roads, rng, int(rng.integers(3, max(4, size // 24) + 1)),
                              *ends, bend=size * 0.08)
    classes[roads.astype(bool)] = ROAD
    scene = Scene(classes, np.zeros((size, size), np.int32))
    density = rng.uniform(0.2, 1.0)
    place_buildings(scene, rng, int(density * size * size / 900),
                    allowed=(GROUND, VEGETATION) if rng.random() < 0.3 else (GROUND,))
    return scene


@dataclass
class Textures:
    """Per-scene texture fields shared by both dates (so unchanged pixels stay alike)."""

    grass_mix: np.ndarray
    coarse: np.ndarray
    fine: np.ndarray
    road_tone: float
    soil_tint: np.ndarray


def draw_textures(rng: np.random.Generator, size: int) -> Textures:
    """Sample the texture fields and scene-level colour jitter of one scene."""
    return Textures(
        grass_mix=smooth_noise(rng, size, size / 3) * rng.uniform(0.3, 1.0),
        coarse=smooth_noise(rng, size, size / 10, octaves=3) - 0.5,
        fine=smooth_noise(rng, size, 2.5, octaves=1) - 0.5,
        road_tone=float(rng.uniform(0.85, 1.35)),
        soil_tint=rng.uniform(0.92, 1.08, 4),
    )


def render(scene: Scene, tex: Textures, season: float = 0.0,
           shadow_len: int = 2) -> np.ndarray:
    """Render a scene to ``(H, W, 4)`` float RGB+NIR reflectance in about ``[0, 1]``.

    Args:
        scene: Land cover of the date.
        tex: Scene textures (shared between dates).
        season: -1 (dry, brown vegetation) .. +1 (lush, green); a nuisance, not a change.
        shadow_len: Building shadow length in px towards the bottom-right (sun elevation).
    """
    cls = scene.classes
    mix = tex.grass_mix[..., None] * (0.5 + 0.5 * season)
    ground = (_SOIL * (1 - mix) + _DRY_GRASS * mix) * tex.soil_tint
    ground = ground * (1 + 0.35 * tex.coarse[..., None] + 0.25 * tex.fine[..., None])
    trees = _TREES * (1 + np.array([-0.25, 0.15, -0.1, 0.1]) * season + np.array(
        [0.3, -0.1, 0.0, -0.15]) * max(-season, 0))
    trees = trees * (1 + 0.3 * tex.coarse[..., None] + 0.9 * tex.fine[..., None])
    img = np.where((cls == VEGETATION)[..., None], trees, ground)
    img[cls == WATER] = (_WATER * (1 + 0.15 * tex.coarse[..., None]))[cls == WATER]
    road = _ROAD * tex.road_tone * (1 + 0.12 * tex.fine[..., None])
    img[cls == ROAD] = road[cls == ROAD]
    on_roof = scene.building_ids > 0
    if on_roof.any():
        roof = scene.roof_colours[scene.building_ids]
        axis = scene.roof_axis[scene.building_ids]
        # Two-tone roof: the half past the centroid along the ridge axis is lit differently.
        ids = scene.building_ids.ravel()
        ys, xs = np.mgrid[0:cls.shape[0], 0:cls.shape[1]]
        count = np.maximum(np.bincount(ids), 1)
        cy = np.bincount(ids, ys.ravel()) / count
        cx = np.bincount(ids, xs.ravel()) / count
        lit = np.where(axis == 0, ys > cy[scene.building_ids], xs > cx[scene.building_ids])
        roof = roof * np.where(lit, 1.06, 0.92)[..., None] * (1 + 0.05 * tex.fine[..., None])
        img[on_roof] = roof[on_roof]
        if shadow_len > 0:
            m = np.float32([[1, 0, shadow_len], [0, 1, shadow_len]])
            cast = cv2.warpAffine(on_roof.astype(np.uint8), m, cls.shape[::-1]).astype(bool)
            img[cast & ~on_roof] *= 0.55
    return img.astype(np.float32)
