"""Score a folder of binary change masks against a folder of ground-truth masks.

Usage (from the repository root)::

    python tools/analysis/eval_change.py --pred work_dirs/preds --gt data/LEVIR-CD/test/label \
        [--gt-encoding 0/255] [--pred-encoding 0/1/255] [--threshold 128] [--out metrics.json]

The numbers are exactly those of :class:`mmrs.evaluation.ChangeMetric` (the metric of
``tools/test.py``), which this tool runs on the masks:

- Files are paired by stem, whatever their extension (``.png``, ``.jpg``, ``.jpeg``, ``.tif``,
  ``.tiff``, case-insensitive): prediction ``x.png`` matches ground truth ``x.tif``.
- They are read by the reader the datasets use (:func:`mmrs.datasets.io.read_label`:
  rasterio for GeoTIFF, pillow otherwise, so palette PNGs give their indices); a multi-band
  mask is accepted only when all its bands are equal (a grey mask saved as RGB).
- Each folder is decoded with its declared encoding (:mod:`mmrs.datasets.labels`), never
  guessed per file: ``--gt-encoding`` (default ``0/255``, the encoding of the public binary
  releases; use the dataset's ``label_encoding``) and ``--pred-encoding`` (default
  ``0/1/255``: what mmrs writes, 0 unchanged, 1 changed, 255 nodata). ``threshold`` makes
  values ``>= --threshold`` changed (lossy JPEG masks). A value outside the encoding stops
  the tool naming the file.
- A pixel is scored when both maps have a label there: 255 (ignore) in the ground truth or
  255 (nodata, not predicted) in the prediction leaves it out, as ``tools/test.py`` leaves
  nodata pixels out (their ground truth is ignore there).

The counts of all pairs are summed into one 2x2 confusion matrix (micro average) and
ChangeMetric's scores (precision, recall, f1, iou, iou_unchanged, miou, oa, kappa, as
fractions) plus ``num_images`` are printed to stdout as JSON and written to ``--out`` if
given. Any bad input (empty or missing folder, a file without counterpart, two files with
the same stem, an unreadable file, a size mismatch, a multi-band mask with different bands,
a value outside the encoding) stops the tool with exit status 1 and a message naming the
files, before anything is written.
"""
import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from mmengine.logging import MMLogger

try:
    import mmrs  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mmrs.datasets.io import read_label  # noqa: E402
from mmrs.datasets.labels import (IGNORE_INDEX, LABEL_ENCODINGS,  # noqa: E402
                                  decode_change_label, single_channel)
from mmrs.evaluation import ChangeMetric  # noqa: E402

MASK_SUFFIXES = ('.png', '.jpg', '.jpeg', '.tif', '.tiff')


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


def read_mask(path: Path) -> np.ndarray:
    """Read a single-band ``(H, W)`` mask with the shared reader (values as stored)."""
    try:
        arr, _ = read_label(str(path))
    except (OSError, ValueError) as err:
        raise EvalChangeError(f'cannot read {path}: {err}') from err
    mask = single_channel(arr)
    if mask is None:
        raise EvalChangeError(f'{path} has {arr.shape[2]} bands with different values; '
                              'a change mask must be single-band (or all bands equal)')
    return mask


def decode(mask: np.ndarray, encoding: str, path: Path, threshold: float) -> np.ndarray:
    """0 unchanged / 1 changed / 255 ignore, as the datasets decode labels."""
    try:
        return decode_change_label(mask, encoding, str(path), threshold, IGNORE_INDEX)
    except ValueError as err:
        raise EvalChangeError(str(err)) from err


def quiet_change_metric() -> ChangeMetric:
    """A ChangeMetric built without mmengine's "prefix is not set" warning, which its logger
    prints to stdout and would corrupt the JSON this tool prints there."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return ChangeMetric(ignore_index=IGNORE_INDEX)
    finally:
        logger.setLevel(level)


def evaluate_folders(pred_dir: Path, gt_dir: Path, gt_encoding: str = '0/255',
                     pred_encoding: str = '0/1/255',
                     threshold: float = 128) -> dict[str, float]:
    """ChangeMetric's scores of all paired masks, plus ``num_images``.

    Raises:
        EvalChangeError: On any bad input (see the module docstring).
    """
    pairs = pair_masks(list_masks(pred_dir, 'prediction'), list_masks(gt_dir, 'ground truth'))
    metric = quiet_change_metric()
    for pred_path, gt_path in pairs:
        pred, gt = read_mask(pred_path), read_mask(gt_path)
        if pred.shape != gt.shape:
            raise EvalChangeError(f'size mismatch: prediction {pred_path} is {pred.shape}, '
                                  f'ground truth {gt_path} is {gt.shape}')
        pred = decode(pred, pred_encoding, pred_path, threshold)
        gt = decode(gt, gt_encoding, gt_path, threshold)
        gt[pred == IGNORE_INDEX] = IGNORE_INDEX  # not predicted (nodata): not scored
        metric.process(None, [dict(pred_sem_seg=dict(data=pred[None]),
                                   gt_sem_seg=dict(data=gt[None]),
                                   img_path=str(pred_path))])
    return {**metric.compute_metrics(metric.results), 'num_images': len(pairs)}


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
    parser.add_argument('--gt-encoding', choices=LABEL_ENCODINGS, default='0/255',
                        help="how the ground truth stores labels (the dataset's "
                        "label_encoding); default 0/255")
    parser.add_argument('--pred-encoding', choices=LABEL_ENCODINGS, default='0/1/255',
                        help='how the predictions store labels; default 0/1/255 (mmrs '
                        'output: 255 = nodata, not scored)')
    parser.add_argument('--threshold', type=float, default=128,
                        help="value from which a pixel is changed for the 'threshold' "
                        'encoding; default 128')
    parser.add_argument('--out', type=Path, help='also write the metrics to this JSON file')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        metrics = evaluate_folders(args.pred, args.gt, args.gt_encoding, args.pred_encoding,
                                   args.threshold)
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
