"""Change detection on whole georeferenced scenes, streamed tile by tile.

    python tools/infer.py CONFIG CKPT --t1 A.tif --t2 B.tif --out change.tif
                          [--vector change.geojson|.gpkg] [--tile 512 --overlap 128 --batch 8]
                          [--probability [uint8|float32]] [--reproject [--resampling bilinear]]
                          [--bands 1,2,3] [--cog] [--overwrite] [--device cpu] [--amp] [--quiet]
    python tools/infer.py CONFIG CKPT --pairs DIR|LIST.txt --out-dir OUT [...]
    python tools/infer.py SEGMENTOR_CONFIG CKPT --image A.tif --out classes.tif [...]

``--pairs DIR`` takes every file of ``DIR/A`` with a namesake in ``DIR/B`` and writes
``OUT/<stem>.tif``; ``--pairs LIST.txt`` reads lines ``t1 t2 out`` (relative paths are
relative to the list's folder; ``#`` starts a comment). Output: band 1 the class map (nodata
255 where either date is nodata), with ``--probability`` band 2 the change probability. With
``--vector`` the stitched map's changed regions become polygons (``mmrs.geo.vectorize``).
Every output is written to a temporary file and moved into place when complete; existing
outputs are refused unless ``--overwrite``. ``--image`` runs a single-image mmseg segmentor
config (:class:`mmrs.apis.SegmentationInferencer`; band 1 the class map, ``--probability``
band 2 the predicted class's probability; not with ``--vector`` or ``--reproject``). See
``docs/geo_inference.md``.
"""
import argparse
import os.path as osp
import sys
from pathlib import Path

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, REPO_ROOT)

IMAGE_SUFFIXES = ('.tif', '.tiff', '.vrt', '.jp2', '.img')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file (path, mmrs::path or shipped name)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--t1', help='date 1 raster')
    parser.add_argument('--t2', help='date 2 raster')
    parser.add_argument('--image', help='single raster for a segmentor config (with --out)')
    parser.add_argument('--out', help='output GeoTIFF (single pair)')
    parser.add_argument('--pairs', help='folder with A/ and B/, or a text file of "t1 t2 out"')
    parser.add_argument('--out-dir', help='output folder for --pairs DIR')
    parser.add_argument('--vector', help='also write polygons (.geojson or .gpkg); with '
                        '--pairs: a suffix (".gpkg") used beside each output')
    parser.add_argument('--min-area', type=float, default=0.0,
                        help='drop polygons smaller than this (map units^2, m^2 if geographic)')
    parser.add_argument('--tile', type=int, default=512)
    parser.add_argument('--overlap', type=int, default=128)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--blending', default='cosine', choices=('cosine', 'linear', 'mean'))
    parser.add_argument('--probability', nargs='?', const='uint8', default=None,
                        choices=('uint8', 'float32'), help='add a probability band')
    parser.add_argument('--reproject', action='store_true',
                        help="warp date 2 onto date 1's grid when they differ")
    parser.add_argument('--resampling', default='bilinear')
    parser.add_argument('--bands', help='1-based bands of both dates, e.g. 1,2,3')
    parser.add_argument('--cog', action='store_true', help='write Cloud Optimized GeoTIFFs')
    parser.add_argument('--overwrite', action='store_true', help='replace existing outputs')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--amp', action='store_true', help='mixed precision')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    parser.add_argument('--allow-key-mismatch', action='store_true',
                        help='load a checkpoint that does not fit the model partially')
    args = parser.parse_args(argv)
    if args.image:
        if args.t1 or args.t2 or args.pairs:
            parser.error('--image (segmentor configs) excludes --t1/--t2/--pairs')
        if not args.out:
            parser.error('--image needs --out')
        if args.vector or args.reproject:
            parser.error('--vector and --reproject are for change pairs, not --image')
        return args
    single = args.t1 or args.t2 or args.out
    if bool(single) == bool(args.pairs):
        parser.error('give either --t1/--t2/--out or --pairs')
    if single and not (args.t1 and args.t2 and args.out):
        parser.error('--t1, --t2 and --out go together')
    return args


def _pair_list(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """``(t1, t2, out)`` of every pair to run."""
    if not args.pairs:
        return [(args.t1, args.t2, args.out)]
    source = Path(args.pairs)
    if source.is_dir():
        if not args.out_dir:
            raise ValueError('--pairs DIR needs --out-dir')
        a_dir, b_dir = source / 'A', source / 'B'
        if not (a_dir.is_dir() and b_dir.is_dir()):
            raise FileNotFoundError(f'--pairs folder {str(source)!r} must hold A/ and B/')
        names = sorted(p.name for p in a_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        missing = [n for n in names if not (b_dir / n).is_file()]
        if missing:
            raise FileNotFoundError(f'{len(missing)} file(s) of {str(a_dir)!r} have no '
                                    f'namesake in {str(b_dir)!r}: {missing[:5]}')
        if not names:
            raise FileNotFoundError(f'no rasters in {str(a_dir)!r}')
        out = Path(args.out_dir)
        return [(str(a_dir / n), str(b_dir / n), str(out / (Path(n).stem + '.tif')))
                for n in names]
    if not source.is_file():
        raise FileNotFoundError(f'--pairs {str(source)!r} is neither a folder nor a file')
    pairs = []
    for number, line in enumerate(source.read_text(encoding='utf-8').splitlines(), 1):
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 3:
            raise ValueError(f'{str(source)!r} line {number}: expected "t1 t2 out", got '
                             f'{line!r}')
        resolved = [f if osp.isabs(f) else str(source.parent / f) for f in fields]
        if args.out_dir and not osp.isabs(fields[2]):
            resolved[2] = str(Path(args.out_dir) / fields[2])
        pairs.append(tuple(resolved))
    if not pairs:
        raise ValueError(f'{str(source)!r} lists no pairs')
    return pairs


def _vector_path(args: argparse.Namespace, out: str) -> str | None:
    if not args.vector:
        return None
    if not args.pairs:
        return args.vector
    suffix = args.vector if args.vector.startswith('.') else Path(args.vector).suffix
    return str(Path(out).with_suffix(suffix))


def _segment(args: argparse.Namespace) -> int:
    """``--image``: one raster through a segmentor config."""
    from mmrs.apis import SegmentationInferencer
    from mmrs.geo.atomic import check_outputs
    check_outputs([args.out], args.overwrite)
    inferencer = SegmentationInferencer(args.config, args.checkpoint, device=args.device,
                                        amp=args.amp, allow_key_mismatch=args.allow_key_mismatch)
    print(inferencer(args.image, args.out, probability=args.probability, tile=args.tile,
                     overlap=args.overlap, batch=args.batch, bands=args.bands,
                     blending=args.blending, cog=args.cog, overwrite=args.overwrite,
                     quiet=args.quiet))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mmrs.geo.atomic import check_outputs
    from mmrs.utils.checkpoint import CheckpointKeyMismatchError, UnsafeCheckpointError
    try:
        if args.image:
            return _segment(args)
        pairs = _pair_list(args)
        outputs = [p[2] for p in pairs] + [v for v in (_vector_path(args, p[2])
                                                       for p in pairs) if v]
        check_outputs(outputs, args.overwrite)  # refuse before an hour of work, not after
        from mmrs.apis import ChangeDetectionInferencer
        inferencer = ChangeDetectionInferencer(args.config, args.checkpoint, device=args.device,
                                               amp=args.amp,
                                               allow_key_mismatch=args.allow_key_mismatch)
        for t1, t2, out in pairs:
            summary = inferencer(t1, t2, out, probability=args.probability, tile=args.tile,
                                 overlap=args.overlap, batch=args.batch, bands=args.bands,
                                 reproject=args.reproject, resampling=args.resampling,
                                 blending=args.blending, cog=args.cog,
                                 overwrite=args.overwrite, quiet=args.quiet)
            vector = _vector_path(args, out)
            if vector:
                from mmrs.geo.vector_io import write_vector
                from mmrs.geo.vectorize import vectorize_change
                features = vectorize_change(out, out if args.probability else None,
                                            probability_band=2, min_area=args.min_area)
                count = write_vector(vector, features, overwrite=args.overwrite)
                summary.extra['polygons'] = count
            print(summary)
            if summary.extra.get('polygons') is not None:
                print(f'  polygons: {summary.extra["polygons"]} -> {vector}')
    except KeyboardInterrupt:
        print('tools/infer.py: interrupted; no partial output was left', file=sys.stderr)
        return 130
    except (FileNotFoundError, FileExistsError, OSError, ValueError,
            CheckpointKeyMismatchError, UnsafeCheckpointError) as error:
        # the user's input is wrong: say what, without a traceback
        print(f'tools/infer.py: error: {error}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
