"""Bitemporal synthetic pairs: simulated land-cover change, nuisance effects, exact labels.

Date 2 is date 1 with real changes (buildings built or demolished, new roads, vegetation
cleared) edited into the class map, so labels are exact: a pixel is changed iff its class
differs. Both dates are then rendered with the same textures but independent radiometry
(illumination, per-band gain, season, blur, sensor noise), which must not count as change:
a plain ``|A - B|`` threshold is therefore not a good detector, a learned model is needed.
"""
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rasterio
from rasterio.transform import Affine

from .changes import simulate_changes
from .spec import (BAND_NAMES, DEFAULT_COUNTS, DEFAULT_CRS, FORMAT_VERSION,  # noqa: F401
                   PIXEL_SIZE, SEMANTIC_CLASSES, SEMANTIC_PALETTE, SPLITS, SUBDIRS, read_meta)
from .scene import draw_layout, draw_textures, render, smooth_noise

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
        crs=crs, transform=Affine(pixel_size, 0.0, origin[0], 0.0, -pixel_size, origin[1]))


# ---------------------------------------------------------------- GeoTIFF and folder writing
_ROWS_PER_SPLIT, _COLS = 1000, 64


def sample_name(split: str, index: int) -> str:
    """File stem of sample ``index`` of ``split`` (shared by A, B and the label folders)."""
    return f'{split}_{index:04d}'


def sample_seed(seed: int, split: str, index: int) -> list[int]:
    """Per-sample entropy: a sample's content depends on (seed, split, index) only, not on
    how many samples the other splits have."""
    return [seed, SPLITS.index(split), index]


def tile_origin(split: str, index: int, size: int,
                pixel_size: float = PIXEL_SIZE) -> tuple[float, float]:
    """Top-left UTM corner of a sample: tiles lie on a grid with 50 m gaps, never overlapping.

    Each split owns a band of 1000 rows of 64 tiles, so splits are also spatially disjoint.
    """
    step = size * pixel_size + 50.0
    row = SPLITS.index(split) * _ROWS_PER_SPLIT + index // _COLS
    return 300_000.0 + (index % _COLS) * step, 5_300_000.0 - row * step


def write_geotiff(path: str | Path, array: np.ndarray, crs: str, transform: Affine,
                  band_names: Sequence[str] | None = None) -> None:
    """Write a ``(H, W)`` or ``(H, W, C)`` uint8 array as a deflate-compressed GeoTIFF."""
    data = array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)
    profile = dict(driver='GTiff', height=data.shape[1], width=data.shape[2],
                   count=data.shape[0], dtype='uint8', crs=crs, transform=transform,
                   compress='deflate')
    if data.shape[0] == 4:  # RGB + NIR: GDAL would otherwise flag band 4 as alpha
        profile.update(photometric='RGB', alpha='UNSPECIFIED')
    with rasterio.open(path, 'w', **profile) as dst:
        dst.write(data)
        if band_names:
            dst.descriptions = tuple(band_names[:data.shape[0]])


def write_sample(split_dir: Path, name: str, pair: SyntheticPair) -> None:
    """Write one pair as ``A``/``B`` images and ``label`` (0/255), ``label_from``/``label_to``
    (class ids) GeoTIFFs, all with the pair's CRS and transform."""
    arrays = (pair.img_from, pair.img_to, pair.change * np.uint8(255), pair.label_from,
              pair.label_to)
    for sub, array in zip(SUBDIRS, arrays):
        names = BAND_NAMES if array.ndim == 3 else None
        write_geotiff(split_dir / sub / f'{name}.tif', array, pair.crs, pair.transform, names)


def _parameters(counts: dict[str, int], size: int, seed: int, bands: int) -> dict:
    """The parameters that define a generated folder (compared on reuse)."""
    return dict(format_version=FORMAT_VERSION, seed=seed, size=size, bands=bands,
                counts={s: int(counts[s]) for s in SPLITS}, crs=DEFAULT_CRS,
                pixel_size=PIXEL_SIZE)


def _matches(meta: dict | None, params: dict) -> bool:
    return meta is not None and all(meta.get(k) == v for k, v in params.items())


def write_synthetic_dataset(root: str | Path, num_train: int = DEFAULT_COUNTS['train'],
                            num_val: int = DEFAULT_COUNTS['val'],
                            num_test: int = DEFAULT_COUNTS['test'], size: int = 128,
                            seed: int = 0, bands: int = 3) -> Path:
    """Generate (or reuse) a synthetic change-detection dataset folder.

    Layout: ``root/{train,val,test}/{A,B,label,label_from,label_to}/<split>_<i>.tif`` plus
    ``root/meta.json``. An existing folder whose ``meta.json`` has the same parameters is
    reused as is (idempotent). Data are generated into a temporary folder beside ``root``
    and renamed into place at the end, so an interrupted run never leaves a partial dataset.
    Every tenth sample (index 3, 13, ...) has no change, only nuisance differences.

    Raises:
        FileExistsError: ``root`` exists, is not empty and was not generated with the same
            parameters (user data is never overwritten or deleted).
    """
    root = Path(root)
    counts = dict(train=num_train, val=num_val, test=num_test)
    if bands not in (3, 4) or size < 32 or seed < 0 or min(counts.values()) < 0:
        raise ValueError(f'need bands in (3, 4), size >= 32, seed >= 0, counts >= 0; got '
                         f'{bands=}, {size=}, {seed=}, {counts=}')
    params = _parameters(counts, size, seed, bands)
    if _matches(read_meta(root), params):
        return root
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        meta = read_meta(root)
        if _matches(meta, params):  # another process (e.g. a DDP rank) finished meanwhile
            return root
        found = ('no synthetic meta.json' if meta is None else 'synthetic data with ' + ', '.join(
            f'{k}={meta.get(k)!r} (wanted {v!r})' for k, v in params.items() if meta.get(k) != v))
        raise FileExistsError(
            f'{root} is not empty and holds {found}. Choose an empty or new directory, or '
            'delete it yourself if it only holds old synthetic data.')
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'{root.name}.partial-', dir=root.parent))
    try:
        _generate_into(tmp, params)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        if root.exists():
            root.rmdir()  # empty (checked above)
        os.rename(tmp, root)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if _matches(read_meta(root), params):  # another process (e.g. a DDP rank) won
            return root
        raise
    return root


def _generate_into(folder: Path, params: dict) -> None:
    """Write all splits and, last, ``meta.json`` (its presence marks a complete dataset)."""
    size, seed, bands = params['size'], params['seed'], params['bands']
    for split in SPLITS:
        for sub in SUBDIRS:
            (folder / split / sub).mkdir(parents=True)
        for i in range(params['counts'][split]):
            pair = generate_pair(sample_seed(seed, split, i), size, bands,
                                 allow_change=i % 10 != 3, origin=tile_origin(split, i, size))
            write_sample(folder / split, sample_name(split, i), pair)
    meta = dict(params, classes=['unchanged', 'changed'],
                semantic_classes=list(SEMANTIC_CLASSES), semantic_palette=SEMANTIC_PALETTE,
                band_names=list(BAND_NAMES[:bands]), binary_label_values=[0, 255])
    (folder / 'meta.json').write_text(json.dumps(meta, indent=2))
