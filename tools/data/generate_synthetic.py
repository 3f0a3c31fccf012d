"""Generate the synthetic bitemporal GeoTIFF change-detection dataset.

    python tools/data/generate_synthetic.py --out data/synthetic \
        --num-train 200 --num-val 40 --num-test 40 --size 128 --seed 0 [--bands 4]

Writes ``OUT/{train,val,test}/{A,B,label,label_from,label_to}/*.tif`` and ``OUT/meta.json``
(see :func:`mmrs.datasets.synthetic.write_synthetic_dataset`). Re-running with the same
parameters reuses the folder; a non-empty folder with other content is never overwritten.
"""
import argparse
import sys
import time

from mmrs.datasets.synthetic import DEFAULT_COUNTS, write_synthetic_dataset


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', required=True, help='dataset folder to create')
    parser.add_argument('--num-train', type=int, default=DEFAULT_COUNTS['train'])
    parser.add_argument('--num-val', type=int, default=DEFAULT_COUNTS['val'])
    parser.add_argument('--num-test', type=int, default=DEFAULT_COUNTS['test'])
    parser.add_argument('--size', type=int, default=128, help='tile size in pixels')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--bands', type=int, choices=(3, 4), default=3,
                        help='3 = RGB, 4 = RGB + NIR')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.time()
    try:
        root = write_synthetic_dataset(args.out, args.num_train, args.num_val, args.num_test,
                                       size=args.size, seed=args.seed, bands=args.bands)
    except (FileExistsError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    total = args.num_train + args.num_val + args.num_test
    print(f'synthetic dataset ready at {root} ({total} pairs, {args.size}px, '
          f'{args.bands} bands, seed {args.seed}; {time.time() - start:.1f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
