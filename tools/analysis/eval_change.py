"""Score a folder of binary change masks against a folder of ground-truth masks.

Usage (from the repository root)::

    python tools/analysis/eval_change.py --pred work_dirs/preds --gt data/LEVIR-CD/test/label \
        [--threshold 128] [--out metrics.json]

Files are paired by stem, whatever their extension (``.png``, ``.jpg``, ``.jpeg``, ``.tif``,
``.tiff``, case-insensitive): prediction ``x.png`` matches ground truth ``x.tif``. GeoTIFFs are
read with rasterio, other formats with OpenCV (``IMREAD_UNCHANGED``); a multi-band image is
accepted only when all its bands are equal (a grey mask saved as RGB).

Binarisation, per file: a mask whose maximum is at most 1 (values {0, 1}) is changed where
``> 0``; any other mask is changed where ``>= --threshold`` (default 128, which suits 0/255
masks such as LEVIR-CD labels). There is no ignore value: every pixel counts. Probability
maps in [0, 1] must be thresholded beforehand, otherwise every non-zero value counts as change.

The counts of all pairs are summed into one 2x2 confusion matrix (micro average) and the
scores of :func:`mmrs.evaluation.functional.binary_metrics` (precision, recall, f1, iou,
iou_unchanged, miou, oa, kappa, as fractions) plus ``num_images`` are printed to stdout as
JSON and written to ``--out`` if given. Any bad input (empty or missing folder, a file without
counterpart, two files with the same stem, an unreadable file, a size mismatch, a multi-band
mask with different bands) stops the tool with exit status 1 and a message naming the files,
before anything is written.
"""
import argparse
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

try:
    from mmrs.evaluation.functional import binary_metrics, confusion_matrix
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from mmrs.evaluation.functional import binary_metrics, confusion_matrix

MASK_SUFFIXES = ('.png', '.jpg', '.jpeg', '.tif', '.tiff')
GEOTIFF_SUFFIXES = ('.tif', '.tiff')


class EvalChangeError(Exception):
    """Bad input: the message names the offending files."""


def list_masks(folder: Path, role: str) -> dict[str, Path]:
    """Map stem -> path of the mask files directly inside ``folder``.

    Raises:
        EvalChangeError: If the folder is missing or holds no mask, or if two files share a
            stem (``x.png`` and ``x.tif``), which would make the pairing ambiguous.
    """
    if not folder.is_dir():
        raise EvalChangeError(f'{role} folder {folder} does not exist or is not a folder')
    masks: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in MASK_SUFFIXES:
            continue
        if path.stem in masks:
            raise EvalChangeError(f'{role} folder has two files with stem {path.stem!r}: '
                                  f'{masks[path.stem].name} and {path.name}')
        masks[path.stem] = path
    if not masks:
        raise EvalChangeError(f'{role} folder {folder} contains no mask '
                              f'({", ".join(MASK_SUFFIXES)})')
    return masks


def pair_masks(pred: dict[str, Path], gt: dict[str, Path]) -> list[tuple[Path, Path]]:
    """Pair predictions and ground truths by stem; every file must have a counterpart."""
    problems = []
    missing_gt = sorted(set(pred) - set(gt))
    missing_pred = sorted(set(gt) - set(pred))
    if missing_gt:
        problems.append('no ground truth for predictions: ' +
                        ', '.join(pred[s].name for s in missing_gt))
    if missing_pred:
        problems.append('no prediction for ground truths: ' +
                        ', '.join(gt[s].name for s in missing_pred))
    if problems:
        raise EvalChangeError('; '.join(problems))
    return [(pred[stem], gt[stem]) for stem in sorted(pred)]


def _read_raster(path: Path) -> np.ndarray:
    """Bands-first array of a GeoTIFF read with rasterio."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError
    try:
        with warnings.catch_warnings():
            # a plain TIFF mask without CRS is fine here
            warnings.simplefilter('ignore', NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                return src.read()
    except (RasterioError, OSError) as err:
        raise EvalChangeError(f'cannot read {path}: {err}') from err


def _read_image(path: Path) -> np.ndarray:
    """Bands-first array of a PNG/JPEG read with OpenCV (unchanged depth and channels)."""
    import cv2
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise EvalChangeError(f'cannot read {path}: OpenCV could not decode it')
    return image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)


def read_mask(path: Path) -> np.ndarray:
    """Read a single-band ``(H, W)`` mask; a multi-band file must have identical bands."""
    reader = _read_raster if path.suffix.lower() in GEOTIFF_SUFFIXES else _read_image
    bands = reader(path)
    if bands.shape[0] > 1 and not all(np.array_equal(bands[0], b) for b in bands[1:]):
        raise EvalChangeError(f'{path} has {bands.shape[0]} bands with different values; '
                              'a change mask must be single-band (or all bands equal)')
    return bands[0]


def binarize(mask: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean change map: ``> 0`` for {0, 1} masks (max <= 1), else ``>= threshold``."""
    if mask.size and mask.max() <= 1:
        return mask > 0
    return mask >= threshold


def evaluate_folders(pred_dir: Path, gt_dir: Path, threshold: float) -> dict[str, float]:
    """Binary change scores of all paired masks, plus ``num_images``.

    Raises:
        EvalChangeError: On any bad input (see the module docstring).
    """
    pairs = pair_masks(list_masks(pred_dir, 'prediction'), list_masks(gt_dir, 'ground truth'))
    cm = np.zeros((2, 2), dtype=np.int64)
    for pred_path, gt_path in pairs:
        pred, gt = read_mask(pred_path), read_mask(gt_path)
        if pred.shape != gt.shape:
            raise EvalChangeError(f'size mismatch: prediction {pred_path} is {pred.shape}, '
                                  f'ground truth {gt_path} is {gt.shape}')
        cm += confusion_matrix(binarize(pred, threshold), binarize(gt, threshold), 2,
                               ignore_index=None)
    return {**binary_metrics(cm), 'num_images': len(pairs)}


def write_json_atomic(data: dict, path: Path) -> None:
    """Write ``data`` as JSON via a temporary file, so ``path`` is never left half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'w') as f:
            json.dump(data, f, indent=2)
            f.write('\n')
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Binary change-detection scores of a folder of predicted masks against '
        'a folder of ground-truth masks (paired by file stem).')
    parser.add_argument('--pred', type=Path, required=True, help='folder of predicted masks')
    parser.add_argument('--gt', type=Path, required=True, help='folder of ground-truth masks')
    parser.add_argument('--threshold', type=float, default=128,
                        help='value from which a pixel is "changed" (masks with max <= 1 '
                        'use > 0 instead); default 128')
    parser.add_argument('--out', type=Path, help='also write the metrics to this JSON file')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        metrics = evaluate_folders(args.pred, args.gt, args.threshold)
    except EvalChangeError as err:
        print(f'eval_change: error: {err}', file=sys.stderr)
        return 1
    text = json.dumps(metrics, indent=2)
    if args.out is not None:
        write_json_atomic(metrics, args.out)
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
