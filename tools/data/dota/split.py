"""Split DOTA scenes into overlapping patches, as the official devkit's ImgSplit does.

    python tools/data/dota/split.py --img-dir data/DOTA/train/images \
        --ann-dir data/DOTA/train/labelTxt --out-dir data/split_1024/train \
        [--subsize 1024] [--gap 200] [--rates 1.0] [--nproc 4] [--no-padding] [--skip-empty]

Writes ``OUT/images/<id>__<rate>__<x>___<y>.png`` and ``OUT/labelTxt/<same>.txt`` (omit
``--ann-dir`` for the unlabelled test split). Multi-scale: ``--rates 0.5 1.0 1.5``. See
:mod:`mmrs.datasets.dota_split` for the devkit's rules (cut objects, ``difficult`` 2, padding).
"""
import argparse
import sys
import time

from mmrs.datasets.dota_split import GAP, SUBSIZE, THRESH, split_dataset


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--img-dir', required=True, help='folder of scene images')
    parser.add_argument('--ann-dir', default=None,
                        help='folder of raw labelTxt files (omit for unlabelled scenes)')
    parser.add_argument('--out-dir', required=True, help='output root (images/, labelTxt/)')
    parser.add_argument('--subsize', type=int, default=SUBSIZE, help='patch size')
    parser.add_argument('--gap', type=int, default=GAP, help='overlap between patches')
    parser.add_argument('--rates', type=float, nargs='+', default=[1.0],
                        help='resize rates (multi-scale), e.g. 0.5 1.0 1.5')
    parser.add_argument('--thresh', type=float, default=THRESH,
                        help='kept-area share above which a cut object keeps its difficult')
    parser.add_argument('--nproc', type=int, default=1, help='worker processes')
    parser.add_argument('--img-suffix', default='.png', help='scene image suffix')
    parser.add_argument('--no-padding', action='store_true',
                        help='write edge patches of small images smaller (ImgSplit.py) '
                             'instead of zero-padding them to subsize')
    parser.add_argument('--skip-empty', action='store_true',
                        help='do not write patches without objects')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.time()
    try:
        names = split_dataset(args.img_dir, args.ann_dir, args.out_dir, nproc=args.nproc,
                              img_suffix=args.img_suffix, subsize=args.subsize, gap=args.gap,
                              rates=args.rates, thresh=args.thresh,
                              padding=not args.no_padding, skip_empty=args.skip_empty)
    except (FileNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'{len(names)} patches written to {args.out_dir} in {time.time() - start:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
