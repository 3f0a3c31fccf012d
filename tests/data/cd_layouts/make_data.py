#!/usr/bin/env python
"""Write tiny fake change-detection releases in each dataset's official folder layout.

Usage::

    python tests/data/cd_layouts/make_data.py OUT_DIR [DATASET ...]

Tests call :func:`make_layout` with a ``tmp_path`` so no binaries are committed. Every pair
carries its own index ``i`` (position within its split) in the pixels, so a test can check
that the dataset paired the right files:

- date-1 image: constant, band ``c`` = ``DATE1_BASE + STEP * i + c``;
- date-2 image: constant, band ``c`` = ``DATE2_BASE + STEP * i + c``;
- binary label: the top ``(i + 1) * ROWS`` rows are changed (255), the rest 0;
- semantic labels (SECOND, Landsat-SCD): the same rows hold class ``from_class(i)`` in the
  date-1 map and ``to_class(i)`` in the date-2 map, 0 elsewhere (SECOND as the official RGB
  colours, Landsat-SCD as index maps).
"""
import argparse
import os
from pathlib import Path

import cv2
import numpy as np

SIZE = 32
ROWS = 8
DATE1_BASE, DATE2_BASE, STEP = 20, 130, 30

SECOND_PALETTE = [[255, 255, 255], [0, 0, 255], [128, 128, 128], [0, 128, 0], [0, 255, 0],
                  [128, 0, 0], [255, 0, 0]]
SPLIT_COUNTS = {'train': 3, 'val': 2, 'test': 2}


def from_class(i: int, num_classes: int) -> int:
    return 1 + i % (num_classes - 1)


def to_class(i: int, num_classes: int) -> int:
    return 1 + (i + 1) % (num_classes - 1)


def image(i: int, date: int, bands: int = 3) -> np.ndarray:
    base = DATE1_BASE if date == 1 else DATE2_BASE
    values = np.array([base + STEP * i + c for c in range(bands)], dtype=np.uint8)
    return np.broadcast_to(values, (SIZE, SIZE, bands)).copy()


def change_mask(i: int) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[:(i + 1) * ROWS] = 255
    return mask


def _write(path: Path, arr: np.ndarray) -> None:
    """Write an RGB(A) or single-channel array (OpenCV wants BGR)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if arr.ndim == 3 and arr.shape[2] >= 3:
        arr = arr[..., [2, 1, 0] + list(range(3, arr.shape[2]))]
    if not cv2.imwrite(str(path), arr):
        raise OSError(f'could not write {path}')


def write_binary_pairs(root: Path, names: list[str], folders: tuple[str, str, str],
                       img_suffix: str = '.png', label_suffix: str = '.png') -> None:
    """Write pairs ``names[i]`` into ``root/<folder>`` (date 1, date 2, label)."""
    for i, name in enumerate(names):
        _write(root / folders[0] / f'{name}{img_suffix}', image(i, 1))
        _write(root / folders[1] / f'{name}{img_suffix}', image(i, 2))
        _write(root / folders[2] / f'{name}{label_suffix}', change_mask(i))


def write_semantic_labels(root: Path, names: list[str], folders: tuple[str, str],
                          num_classes: int, palette: list | None = None) -> None:
    for i, name in enumerate(names):
        rows = change_mask(i) > 0
        for folder, cls in zip(folders, (from_class(i, num_classes), to_class(i, num_classes))):
            label = np.where(rows, cls, 0).astype(np.uint8)
            if palette is not None:
                label = np.asarray(palette, np.uint8)[label]
            _write(root / folder / f'{name}.png', label)


def _split_tree(root: Path, folders: tuple[str, str, str], name_fmt: str, img_suffix: str = '.png',
                label_suffix: dict | None = None, counts: dict = SPLIT_COUNTS) -> dict:
    for split, n in counts.items():
        names = [name_fmt.format(split=split, k=k) for k in range(n)]
        write_binary_pairs(root / split, names, folders, img_suffix,
                           (label_suffix or {}).get(split, '.png'))
    return dict(data_root=str(root), counts=dict(counts))


def _list_tree(root: Path, folders: tuple[str, str, str], list_fmt: str, name_fmt: str,
               counts: dict = SPLIT_COUNTS) -> dict:
    """One flat folder per role + a list file per split (WHU-CD-256 style)."""
    offset = 0
    for split, n in counts.items():
        names = [name_fmt.format(k=offset + k) for k in range(n)]
        write_binary_pairs(root, names, folders)
        list_file = root / list_fmt.format(split=split)
        list_file.parent.mkdir(parents=True, exist_ok=True)
        list_file.write_text(''.join(f'{n}.png\n' for n in names))
        offset += n
    return dict(data_root=str(root), counts=dict(counts))


def make_levir_cd(root: Path) -> dict:
    return _split_tree(root, ('A', 'B', 'label'), '{split}_{k}')


def make_levir_cd_plus(root: Path) -> dict:
    """LEVIR-CD+: LEVIR-CD's folders with only train and test splits."""
    counts = {split: n for split, n in SPLIT_COUNTS.items() if split != 'val'}
    return _split_tree(root, ('A', 'B', 'label'), '{split}_{k}', counts=counts)


def make_whu_cd(root: Path) -> dict:
    return _list_tree(root, ('A', 'B', 'label'), 'list/{split}.txt', 'whucd_{k:05d}')


def make_clcd(root: Path) -> dict:
    return _split_tree(root, ('time1', 'time2', 'label'), '{k}')


def make_sysu_cd(root: Path) -> dict:
    return _split_tree(root, ('time1', 'time2', 'label'), '{k:05d}')


def make_s2looking(root: Path) -> dict:
    info = _split_tree(root, ('Image1', 'Image2', 'label'), '{k}')
    for split in SPLIT_COUNTS:  # per-date building masks exist in the release; unused
        for name in os.listdir(root / split / 'label'):
            _write(root / split / 'label1' / name, np.zeros((SIZE, SIZE), np.uint8))
    return info


def make_dsifn(root: Path) -> dict:
    return _split_tree(root, ('t1', 't2', 'mask'), '{k}', img_suffix='.jpg',
                       label_suffix={'train': '.png', 'val': '.png', 'test': '.tif'})


def make_cdd(root: Path) -> dict:
    subset = root / 'ChangeDetectionDataset' / 'Real' / 'subset'
    return _split_tree(subset, ('A', 'B', 'OUT'), '{k:05d}', img_suffix='.jpg',
                       label_suffix={s: '.jpg' for s in SPLIT_COUNTS})


def make_second(root: Path) -> dict:
    counts = {'train': 3, 'test': 2}
    for split, n in counts.items():
        names = [f'{k:05d}' for k in range(n)]
        for i, name in enumerate(names):
            _write(root / split / 'im1' / f'{name}.png', image(i, 1))
            _write(root / split / 'im2' / f'{name}.png', image(i, 2))
        write_semantic_labels(root / split, names, ('label1', 'label2'), 7, SECOND_PALETTE)
    return dict(data_root=str(root), counts=counts, num_classes=7)


def make_landsat_scd(root: Path) -> dict:
    offset = 0
    for split, n in SPLIT_COUNTS.items():
        names = [str(offset + k) for k in range(n)]
        for i, name in enumerate(names):
            _write(root / 'A' / f'{name}.png', image(i, 1))
            _write(root / 'B' / f'{name}.png', image(i, 2))
        write_semantic_labels(root, names, ('labelA', 'labelB'), 5)
        (root / f'{split}_list.txt').write_text(''.join(f'{n}.png\n' for n in names))
        offset += n
    return dict(data_root=str(root), counts=dict(SPLIT_COUNTS), num_classes=5)


LAYOUTS = {
    'levir_cd': make_levir_cd,
    'levir_cd_plus': make_levir_cd_plus,
    'whu_cd': make_whu_cd,
    'clcd': make_clcd,
    'sysu_cd': make_sysu_cd,
    's2looking': make_s2looking,
    'dsifn': make_dsifn,
    'cdd': make_cdd,
    'second': make_second,
    'landsat_scd': make_landsat_scd,
}


def make_layout(name: str, out_dir: str | Path) -> dict:
    """Write the fake release ``name`` under ``out_dir/name``.

    Returns ``dict(data_root=..., counts={split: n}, [num_classes=K])``.
    """
    return LAYOUTS[name](Path(out_dir) / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out_dir')
    parser.add_argument('datasets', nargs='*', help=f'any of {sorted(LAYOUTS)} (default all)')
    args = parser.parse_args()
    unknown = set(args.datasets) - set(LAYOUTS)
    if unknown:
        parser.error(f'unknown datasets {sorted(unknown)}; choose from {sorted(LAYOUTS)}')
    for name in args.datasets or LAYOUTS:
        info = make_layout(name, args.out_dir)
        print(f'{name}: {info}')


if __name__ == '__main__':
    main()
