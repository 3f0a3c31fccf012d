"""Land-cover change events that turn the date-1 scene into the date-2 scene.

Each event edits the class map (and building ids) in place, so the change label is exactly
the set of pixels whose class differs; rendering of both dates happens afterwards.
"""
from collections.abc import Callable

import numpy as np

from .scene import (BUILDING, GROUND, ROAD, VEGETATION, Scene, draw_polyline, place_buildings,
                    smooth_noise)

MAX_CHANGE_FRACTION = 0.2


def _build(scene: Scene, rng: np.random.Generator) -> None:
    """New construction: a small cluster of buildings on ground or vegetation."""
    centre = tuple(rng.uniform(0.15, 0.85, 2) * scene.classes.shape[0])
    place_buildings(scene, rng, int(rng.integers(1, 5)), allowed=(GROUND, VEGETATION),
                    centre=centre)


def _demolish(scene: Scene, rng: np.random.Generator) -> None:
    """A building is torn down and its footprint becomes bare ground."""
    ids = np.unique(scene.building_ids)[1:]
    if len(ids):
        gone = scene.building_ids == rng.choice(ids)
        scene.classes[gone] = GROUND
        scene.building_ids[gone] = 0


def _new_road(scene: Scene, rng: np.random.Generator) -> None:
    """A road segment branching off an existing road (or an edge) across ground/vegetation."""
    size = scene.classes.shape[0]
    ys, xs = np.nonzero(scene.classes == ROAD)
    if len(ys) and rng.random() < 0.8:
        k = rng.integers(len(ys))
        start = np.array([xs[k], ys[k]], float)
    else:
        start = rng.uniform(0, size, 2)
    angle = rng.integers(4) * np.pi / 2 + rng.normal(0, 0.1)
    end = start + rng.uniform(0.25, 0.7) * size * np.array([np.cos(angle), np.sin(angle)])
    mask = np.zeros_like(scene.classes)
    draw_polyline(mask, rng, int(rng.integers(3, max(4, size // 24) + 1)), tuple(start),
                  tuple(end), bend=size * 0.05)
    scene.classes[mask.astype(bool) & np.isin(scene.classes, (GROUND, VEGETATION))] = ROAD


def _clear_vegetation(scene: Scene, rng: np.random.Generator) -> None:
    """Part of a vegetation patch is cleared (a rectangle or a blob) to bare ground."""
    size = scene.classes.shape[0]
    ys, xs = np.nonzero(scene.classes == VEGETATION)
    if not len(ys):
        return
    k = rng.integers(len(ys))
    radius = rng.uniform(0.08, 0.22) * size
    yy, xx = np.mgrid[0:size, 0:size]
    if rng.random() < 0.5:
        area = (abs(yy - ys[k]) < radius) & (abs(xx - xs[k]) < radius * rng.uniform(0.5, 1.5))
    else:
        wobble = radius * 0.5 * (smooth_noise(rng, size, radius) - 0.5)
        area = np.hypot(yy - ys[k], xx - xs[k]) + wobble < radius
    scene.classes[area & (scene.classes == VEGETATION)] = GROUND


_EVENTS: tuple[Callable[[Scene, np.random.Generator], None], ...] = (
    _build, _demolish, _new_road, _clear_vegetation)
_EVENT_WEIGHTS = np.array([0.4, 0.2, 0.15, 0.25])


def rebuilt(before: Scene, after: Scene) -> np.ndarray:
    """Pixels that are a building on both dates but a *different* building (new roof).

    A demolition followed by a construction on the same footprint keeps the class and
    changes the picture; labels defined as "class differs" would call it unchanged.
    """
    return (before.classes == BUILDING) & (after.classes == BUILDING) & (
        before.building_ids != after.building_ids)


def simulate_changes(before: Scene, rng: np.random.Generator) -> Scene:
    """Apply random change events until a target changed fraction (3-18 %) is reached.

    Events that would push the changed fraction above :data:`MAX_CHANGE_FRACTION` are
    discarded, so scenes stay in the range typical of real change-detection tiles; so are
    events that would put a new building where a date-1 building stood (see
    :func:`rebuilt`), so that a pixel looks different exactly when its class changed.
    """
    target = rng.uniform(0.03, 0.18)
    after = before.copy()
    for _ in range(40):
        if (after.classes != before.classes).mean() >= target:
            break
        trial = after.copy()
        _EVENTS[rng.choice(len(_EVENTS), p=_EVENT_WEIGHTS)](trial, rng)
        if (trial.classes != before.classes).mean() <= MAX_CHANGE_FRACTION and \
                not rebuilt(before, trial).any():
            after = trial
    return after
