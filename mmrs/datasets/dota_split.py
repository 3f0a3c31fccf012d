"""Cut large DOTA scenes into overlapping patches, as the official devkit's ``ImgSplit`` does.

Behaviour follows the DOTA devkit (https://github.com/CAPTAIN-WHU/DOTA_devkit, ``ImgSplit.py``
and ``ImgSplit_multi_process.py``), so patches and labels equal the ones the benchmark's
models were trained on:

- Each rate resizes the scene first (OpenCV bicubic, ``fx = fy = rate``); label coordinates
  are truncated to integers, as the devkit's parser does, then multiplied by the rate.
- Patches of ``subsize`` start every ``subsize - gap`` pixels; the last column / row is moved
  back to end at the image border (``max(size - subsize, 0)``), so no patch starts past it.
  ``padding=True`` (the multi-process devkit's default) pads edge patches of small images with
  zeros at the bottom / right to ``subsize``; ``padding=False`` (``ImgSplit.py``) writes them
  smaller.
- The patch window for labels is ``[left, min(left + subsize, W - 1)] x [up, min(up + subsize,
  H - 1)]``. An object fully inside is written with coordinates ``int(coord - left)``. An object
  cut by the border is clipped to the window (shapely); the clipped polygon is kept when it
  has 4 vertices, or 5 (the two ends of its shortest edge merged into their midpoint), and
  dropped otherwise; its vertices are re-ordered (cyclically) to best match the original's,
  shifted to the patch, truncated and clamped to ``[1, subsize]``. It keeps its ``difficult``
  when more than ``thresh`` (0.7) of its area is inside, else ``difficult`` becomes 2.
- Every patch is written, with an empty label file when no object falls in it (unless
  ``skip_empty``); images are 8-bit 3-channel (OpenCV ``IMREAD_COLOR``, as the devkit).
- Names: ``<id>__<rate>__<left>___<up>`` (``P0706__1__0___0``, ``P0706__0.5__824___0``), the rate
  written as the devkit's ``str(rate)`` of the number given, except that integral rates are
  written as integers (``1``, not ``1.0``).

Differences: where the devkit crashes (an unreadable image, a missing label file, a
self-intersecting quadrilateral, whose clipping GEOS refuses) this module raises naming the
file, or keeps the object when all its vertices are inside the patch and drops it when it is
cut (its clipped shape is not one polygon).
"""
import math
import os
import os.path as osp
from collections.abc import Sequence
from multiprocessing import Pool

import cv2
import numpy as np

from .dota import read_dota_label

#: Devkit defaults used by mmrotate's DOTA configs: 1024 patches, 200 overlap.
SUBSIZE = 1024
GAP = 200
#: Keep a cut object's own ``difficult`` when more than this share of its area is inside.
THRESH = 0.7
#: ``difficult`` of a cut object that kept ``<= thresh`` of its area.
PARTIAL_DIFFICULT = 2


def format_rate(rate: float) -> str:
    """The rate as written in patch names: ``1`` for 1 / 1.0, ``0.5``, ``1.5``."""
    rate = float(rate)
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f'split rate must be a positive number, got {rate!r}')
    return str(int(rate)) if rate.is_integer() else repr(rate)


def patch_name(img_id: str, rate: float, left: int, up: int) -> str:
    """``<id>__<rate>__<left>___<up>``."""
    return f'{img_id}__{format_rate(rate)}__{int(left)}___{int(up)}'


def _starts(size: int, subsize: int, slide: int) -> list[int]:
    starts, pos = [], 0
    while pos < size:
        if pos + subsize >= size:
            starts.append(max(size - subsize, 0))
            break
        starts.append(pos)
        pos += slide
    return starts


def patch_origins(width: int, height: int, subsize: int = SUBSIZE,
                  gap: int = GAP) -> list[tuple[int, int]]:
    """Top-left corners ``(left, up)`` of the patches of a ``width x height`` image."""
    if subsize <= 0 or not 0 <= gap < subsize:
        raise ValueError(f'need subsize > 0 and 0 <= gap < subsize, got subsize={subsize}, '
                         f'gap={gap}')
    slide = subsize - gap
    return [(x, y) for x in _starts(width, subsize, slide) for y in _starts(height, subsize, slide)]


def _poly5_to_poly4(pts: np.ndarray) -> np.ndarray:
    """Merge the two ends of the shortest edge of a pentagon ((5, 2)) into their midpoint."""
    edges = np.linalg.norm(pts - np.roll(pts, -1, axis=0), axis=1)
    k = int(np.argsort(edges, kind='quicksort')[0])
    mid = (pts[k] + pts[(k + 1) % 5]) / 2
    out = [mid if i == k else pts[i] for i in range(5) if i != (k + 1) % 5]
    return np.asarray(out)


def _best_start(pts: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The cyclic rotation of ``pts`` ((4, 2)) closest (sum of squares) to ``ref``."""
    rolls = [np.roll(pts, -k, axis=0) for k in range(4)]
    dists = [float(((r - ref) ** 2).sum()) for r in rolls]
    return rolls[int(np.argsort(dists, kind='quicksort')[0])]


def clip_objects(polys: np.ndarray, difficult: Sequence[int], left: int, up: int,
                 right: int, down: int, subsize: int = SUBSIZE, thresh: float = THRESH,
                 choose_best_point: bool = True) -> list[tuple[int, np.ndarray, int]]:
    """Objects of one patch window: ``[(object index, (8,) patch coords, difficult)]``.

    ``polys`` are the (rate-scaled) scene quadrilaterals ``(N, 8)``; the window is
    ``[left, right] x [up, down]``. See the module docstring for the devkit's rules.
    """
    import shapely
    from shapely.geometry import Polygon
    from shapely.geometry.polygon import orient

    # the devkit's vertex order, so clipped vertices come out of GEOS identically
    window = Polygon([(left, up), (right, up), (right, down), (left, down)])
    offset = np.array([left, up], dtype=np.float64)
    out = []
    for i, poly in enumerate(np.asarray(polys, dtype=np.float64).reshape(-1, 4, 2)):
        gt = Polygon(poly)
        if gt.area <= 0:
            continue
        if gt.is_valid:
            inter = gt.intersection(window)
            share = inter.area / gt.area
        elif ((poly[:, 0] >= left) & (poly[:, 0] <= right) & (poly[:, 1] >= up)
              & (poly[:, 1] <= down)).all():
            share = 1.0  # self-intersecting but inside: kept as is (GEOS cannot clip it)
        else:
            inter = shapely.make_valid(gt).intersection(window)
            share = inter.area / gt.area
        if share <= 0:
            continue
        if share == 1:
            pts = poly
        else:
            if inter.geom_type != 'Polygon':
                continue  # cut into several pieces: the devkit cannot write it either
            pts = np.asarray(orient(inter, sign=1.0).exterior.coords)[:-1]
            if len(pts) < 4 or len(pts) > 5:
                continue
            if len(pts) == 5:
                pts = _poly5_to_poly4(pts)
            if choose_best_point:
                pts = _best_start(pts, poly)
        local = np.trunc(pts - offset).reshape(8)
        if share < 1:
            local = np.where(local <= 1, 1.0, np.where(local >= subsize, float(subsize), local))
        diff = int(difficult[i]) if share > thresh else PARTIAL_DIFFICULT
        out.append((i, local, diff))
    return out


def _label_line(coords: np.ndarray, name: str, difficult: int) -> str:
    return ' '.join(repr(float(v)) for v in coords) + f' {name} {difficult}'


def split_image(img_path: str, ann_path: str | None, out_dir: str, subsize: int = SUBSIZE,
                gap: int = GAP, rates: Sequence[float] = (1.0, ), thresh: float = THRESH,
                padding: bool = True, pad_value: int = 0, skip_empty: bool = False,
                img_ext: str = '.png', choose_best_point: bool = True) -> list[str]:
    """Split one scene into ``out_dir/images/<patch>.png`` (+ ``labelTxt/<patch>.txt``).

    Args:
        img_path: The scene image.
        ann_path: Its raw label file, or ``None`` for an unlabelled scene (no ``labelTxt``
            written).
        out_dir: Output root; ``images/`` and ``labelTxt/`` are created.
        subsize, gap: Patch size and overlap in (resized) pixels.
        rates: Resize rates (multi-scale split, e.g. ``(0.5, 1.0, 1.5)``).
        thresh: Kept-area share above which a cut object keeps its ``difficult``.
        padding: Pad edge patches to ``subsize`` with ``pad_value``.
        skip_empty: Do not write patches without objects (labelled scenes only).
        img_ext: Patch image suffix (``.png``: lossless).
        choose_best_point: Re-order cut polygons' vertices to match the original's.

    Returns:
        The names of the patches written.

    Raises:
        FileNotFoundError / ValueError: Unreadable image, missing or malformed label file.
    """
    img = cv2.imread(img_path, cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f'cannot read DOTA image {img_path!r}')
    img_id = osp.splitext(osp.basename(img_path))[0]
    if ann_path is not None:
        # any class name is accepted: splitting does not depend on the DOTA version
        label = read_dota_label(ann_path, classes=None, version=None)
        polys = np.trunc(label['polys'])
    os.makedirs(osp.join(out_dir, 'images'), exist_ok=True)
    if ann_path is not None:
        os.makedirs(osp.join(out_dir, 'labelTxt'), exist_ok=True)
    written = []
    for rate in rates:
        rate = float(rate)
        scaled = img if rate == 1 else cv2.resize(img, None, fx=rate, fy=rate,
                                                   interpolation=cv2.INTER_CUBIC)
        height, width = scaled.shape[:2]
        for left, up in patch_origins(width, height, subsize, gap):
            name = patch_name(img_id, rate, left, up)
            lines = []
            if ann_path is not None:
                right, down = min(left + subsize, width - 1), min(up + subsize, height - 1)
                for i, coords, diff in clip_objects(polys * rate, label['difficult'], left, up,
                                                    right, down, subsize, thresh,
                                                    choose_best_point):
                    lines.append(_label_line(coords, label['names'][i], diff))
                if skip_empty and not lines:
                    continue
                with open(osp.join(out_dir, 'labelTxt', name + '.txt'), 'w',
                          encoding='utf-8') as f:
                    f.writelines(line + '\n' for line in lines)
            patch = scaled[up:up + subsize, left:left + subsize]
            if padding and patch.shape[:2] != (subsize, subsize):
                full = np.full((subsize, subsize, 3), pad_value, dtype=np.uint8)
                full[:patch.shape[0], :patch.shape[1]] = patch
                patch = full
            out_path = osp.join(out_dir, 'images', name + img_ext)
            if not cv2.imwrite(out_path, np.ascontiguousarray(patch, dtype=np.uint8)):
                raise OSError(f'cannot write patch {out_path!r}')
            written.append(name)
    return written


def _split_job(args: tuple) -> list[str]:
    img_path, ann_path, out_dir, kwargs = args
    return split_image(img_path, ann_path, out_dir, **kwargs)


def split_dataset(img_dir: str, ann_dir: str | None, out_dir: str, nproc: int = 1,
                  img_suffix: str = '.png', **kwargs) -> list[str]:
    """Split every ``img_suffix`` image of ``img_dir`` (labels ``ann_dir/<id>.txt``).

    ``kwargs`` go to :func:`split_image`; ``nproc > 1`` splits images in a process pool.
    Returns all patch names, sorted.

    Raises:
        FileNotFoundError: Missing folder, or an image without its label file.
        ValueError: No images in ``img_dir``.
    """
    if not osp.isdir(img_dir):
        raise FileNotFoundError(f'image folder not found: {img_dir!r}')
    names = sorted(n for n in os.listdir(img_dir) if n.endswith(img_suffix)
                   and osp.splitext(n)[0] != 'Thumbs')
    if not names:
        raise ValueError(f'no {img_suffix} images in {img_dir!r}')
    jobs = []
    for n in names:
        ann = None
        if ann_dir is not None:
            ann = osp.join(ann_dir, osp.splitext(n)[0] + '.txt')
            if not osp.isfile(ann):
                raise FileNotFoundError(f'label file {ann!r} not found for image {n!r}')
        jobs.append((osp.join(img_dir, n), ann, out_dir, kwargs))
    if nproc > 1:
        with Pool(nproc) as pool:
            results = pool.map(_split_job, jobs)
    else:
        results = [_split_job(j) for j in jobs]
    return sorted(p for r in results for p in r)
