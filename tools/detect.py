"""Rotated object detection on a whole scene (GeoTIFF or large PNG/JPEG), streamed patch by patch.

    python tools/detect.py CONFIG CKPT --image SCENE.tif --out dets.geojson|.gpkg
                           [--overview ov.png|.jpg] [--task1-dir DIR]
                           [--patch 1024 --overlap 200 --batch 4] [--score-thr 0.05]
                           [--nms-iou 0.1] [--bands 1,2,3] [--device cpu] [--overwrite] [--quiet]

Any mmrotate 1.x detector config (:class:`mmrs.apis.RotatedDetectionInferencer`): DOTA-split
patches read window by window, the config's test preprocessing, detections merged into the scene
with class-wise rotated NMS. ``--out`` gets one polygon per detection (properties ``class``,
``label``, ``score``): in the image CRS for a ``.gpkg`` and EPSG:4326 for a ``.geojson`` when the
image is georeferenced, pixel coordinates otherwise. ``--overview`` draws the boxes on a
downsampled picture of the scene, ``--task1-dir`` writes official DOTA Task1 files (pixel
corners; the image name is the file's stem). Existing outputs are refused unless
``--overwrite``. See ``docs/rotated_inference.md``.
"""
import argparse
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, REPO_ROOT)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='detector config (path, mmrs::path or shipped name)')
    parser.add_argument('checkpoint', help="checkpoint file ('none': the config's initial "
                        'weights, for smoke tests)')
    parser.add_argument('--image', required=True, help='scene: GeoTIFF, PNG, JPEG ...')
    parser.add_argument('--out', required=True, help='polygons: .geojson or .gpkg')
    parser.add_argument('--overview', help='also a .png/.jpg overview with the boxes drawn')
    parser.add_argument('--overview-size', type=int, default=2048,
                        help='longest side of the overview (pixels)')
    parser.add_argument('--task1-dir', help='also write DOTA Task1_<class>.txt files here')
    parser.add_argument('--patch', type=int, default=1024, help='patch size (DOTA: 1024)')
    parser.add_argument('--overlap', type=int, default=200, help='patch overlap (DOTA: 200)')
    parser.add_argument('--batch', type=int, default=4, help='patches per forward pass')
    parser.add_argument('--score-thr', type=float, default=0.05)
    parser.add_argument('--nms-iou', type=float, default=0.1,
                        help='IoU of the class-wise rotated NMS merging the patches')
    parser.add_argument('--bands', help='1-based bands, e.g. 1,2,3 (default all but alpha)')
    parser.add_argument('--nodata', type=float, help="nodata value overriding the file's")
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--overwrite', action='store_true', help='replace existing outputs')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    parser.add_argument('--allow-key-mismatch', action='store_true',
                        help='load a checkpoint that does not fit the model partially')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mmrs.geo.atomic import check_outputs
    from mmrs.geo.vector_io import vector_format
    from mmrs.utils.checkpoint import CheckpointKeyMismatchError, UnsafeCheckpointError
    try:
        vector_format(args.out)
        # refuse before loading the model (Task1 files are checked once the classes are known)
        check_outputs([args.out] + ([args.overview] if args.overview else []), args.overwrite)
        if not osp.isfile(args.image):
            raise FileNotFoundError(f'image {args.image!r} does not exist')
        from mmrs.apis import RotatedDetectionInferencer
        checkpoint = None if args.checkpoint.lower() == 'none' else args.checkpoint
        inferencer = RotatedDetectionInferencer(args.config, checkpoint, device=args.device,
                                                allow_key_mismatch=args.allow_key_mismatch)
        summary = inferencer(args.image, args.out, overview=args.overview,
                             task1_dir=args.task1_dir, patch=args.patch, overlap=args.overlap,
                             batch=args.batch, score_thr=args.score_thr, nms_iou=args.nms_iou,
                             bands=args.bands, nodata=args.nodata,
                             overview_size=args.overview_size, overwrite=args.overwrite,
                             quiet=args.quiet)
        print(summary)
    except KeyboardInterrupt:
        print('tools/detect.py: interrupted; no partial output was left', file=sys.stderr)
        return 130
    except (FileNotFoundError, FileExistsError, OSError, ValueError,
            CheckpointKeyMismatchError, UnsafeCheckpointError) as error:
        print(f'tools/detect.py: error: {error}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
