"""Merge patch-level DOTA Task1 detections into whole-scene Task1 files.

    python tools/data/dota/merge.py --det-dir work_dirs/patch_dets --out-dir work_dirs/merged \
        [--iou-thr 0.1] [--nms poly|rotated] [--version v1.0]

``--det-dir`` holds ``Task1_<class>.txt`` with lines ``<id>__<rate>__<x>___<y> score x1 y1 ...
x4 y4`` (patch coordinates); the output has the same files with scene names and coordinates
(``(coord + offset) / rate``) after class-wise NMS: ``poly`` = the devkit's polygon NMS
(``ResultMerge_multi_process.py``), ``rotated`` = mmcv ``nms_rotated`` on le90 boxes.
``--version`` also writes empty files for classes without detections.
"""
import argparse
import sys

from mmrs.datasets.dota import DOTA_CLASSES
from mmrs.datasets.dota_merge import IOU_THR, NMS_METHODS, merge_task1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--det-dir', required=True, help='patch-level Task1_<class>.txt files')
    parser.add_argument('--out-dir', required=True, help='where scene-level files go')
    parser.add_argument('--iou-thr', type=float, default=IOU_THR,
                        help='NMS IoU threshold (devkit and mmrotate: 0.1)')
    parser.add_argument('--nms', choices=NMS_METHODS, default='poly')
    parser.add_argument('--version', choices=sorted(DOTA_CLASSES), default=None,
                        help='write a (possibly empty) file for every class of this version')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    classes = DOTA_CLASSES[args.version] if args.version else None
    try:
        paths = merge_task1(args.det_dir, args.out_dir, args.iou_thr, args.nms, classes)
    except (FileNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'{len(paths)} Task1 files written to {args.out_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
