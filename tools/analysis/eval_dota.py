"""Score DOTA Task1 submission files (oriented boxes) against raw ``labelTxt`` files.

Usage (from the repository root)::

    python tools/analysis/eval_dota.py --det-dir results/ --ann-dir data/DOTA/val/labelTxt \
        [--imageset val.txt] [--iou 0.5] [--metric voc07|area] [--mode devkit|mmrotate] \
        [--classes dota1.0|dota1.5|dota2.0] [--out metrics.json]

- ``--det-dir`` holds ``Task1_<class>.txt`` files, one detection a line:
  ``image score x1 y1 x2 y2 x3 y3 x4 y4`` (what the DOTA server takes, and what
  ``tools/data/dota/merge.py`` / mmrotate's ``merge_patches`` write). A class without a file
  has no detections.
- ``--ann-dir`` holds the raw ``<image>.txt`` labels (``imagesource:`` / ``gsd:`` headers
  optional, then ``x1 y1 ... x4 y4 class difficult``). ``--imageset`` is a text file with one
  image name a line (the devkit's ``imagesetfile``); default: every label file.
- ``--mode devkit`` (default) reproduces the official ``dota_evaluation_task1.py``;
  ``--mode mmrotate`` reproduces mmrotate 1.x's ``eval_rbbox_map`` on quadrilaterals.
  The differences are listed in :mod:`mmrs.evaluation.dota_eval` and ``docs/dota_evaluation.md``.

Prints the per-class AP (fractions), mAP and counts as JSON (also written to ``--out``). A
malformed line stops the tool with exit status 1 and a message naming the file and line.
"""
import argparse
import json
import sys

from mmrs.datasets.dota import DOTA_CLASSES
from mmrs.evaluation.dota_eval import AP_METRICS, EVAL_MODES, evaluate_task1

CLASS_LISTS = {'dota1.0': 'v1.0', 'dota1.5': 'v1.5', 'dota2.0': 'v2.0'}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--det-dir', required=True, help='folder of Task1_<class>.txt files')
    parser.add_argument('--ann-dir', required=True, help='folder of raw labelTxt files')
    parser.add_argument('--imageset', help='text file: one image name a line')
    parser.add_argument('--iou', type=float, default=0.5, help='IoU threshold')
    parser.add_argument('--metric', choices=AP_METRICS, default='voc07')
    parser.add_argument('--mode', choices=EVAL_MODES, default='devkit')
    parser.add_argument('--classes', choices=sorted(CLASS_LISTS), default='dota1.0')
    parser.add_argument('--out', help='also write the JSON here')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    version = CLASS_LISTS[args.classes]
    try:
        imageset = None
        if args.imageset:
            with open(args.imageset, encoding='utf-8-sig') as f:
                imageset = [line.strip() for line in f if line.strip()]
            if not imageset:
                raise ValueError(f'image set {args.imageset!r} is empty')
        result = evaluate_task1(args.det_dir, args.ann_dir, DOTA_CLASSES[version], imageset,
                                args.iou, args.metric, args.mode, version)
    except (OSError, ValueError) as err:
        print(f'eval_dota: {err}', file=sys.stderr)
        return 1
    report = dict(mode=args.mode, metric=args.metric, iou_thr=args.iou, classes=args.classes,
                  **result)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
