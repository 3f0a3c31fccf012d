"""Archive search over GeoTIFF tiles with CLIP embeddings.

    python tools/clip_search.py index CONFIG CKPT SCENE.tif [SCENE.tif ...] --db DIR
        [--tile 224 --overlap 0 --batch 32 --bands 1,2,3 --stretch auto --nodata V
         --min-valid 0 --chunk-tiles 1024 --dtype float16 --device cpu --quiet]
    python tools/clip_search.py query --db DIR (--text "..." | --image IMG) [--top-k 10]
        [--out hits.geojson --overwrite] [--config CONFIG --checkpoint CKPT]
        [--backend auto|numpy|faiss] [--device cpu]
    python tools/clip_search.py info --db DIR

``index`` embeds every tile of each scene (all-nodata tiles skipped and counted) into the
archive folder ``DIR`` (created, or appended to: a scene already in it is skipped and named;
an interrupted run is resumed by running the same command again). ``query`` prints the
``top-k`` most similar tiles (rank, score, scene, window ``row_off,col_off,height,width``)
and writes them as RFC 7946 GeoJSON (EPSG:4326 lon/lat, properties ``score``, ``rank``,
``scene``, ``window``, ``crs``) or a GeoPackage; the model defaults to the one recorded in
the archive. ``CKPT`` may be ``none`` for a model with its initial weights (tests only: the
archive then only matches a model with exactly those weights). See
:mod:`mmrs.apis.clip_search` for the preprocessing (bands, stretch, padding).
"""
import argparse
import json
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, REPO_ROOT)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)
    idx = sub.add_parser('index', help='embed the tiles of GeoTIFF scenes into an archive')
    idx.add_argument('config', help='config with model = dict(type="CLIP", ...)')
    idx.add_argument('checkpoint', help='checkpoint file ("none": initial weights)')
    idx.add_argument('scenes', nargs='+', help='GeoTIFF scenes')
    idx.add_argument('--db', required=True, help='archive folder (created or appended to)')
    idx.add_argument('--tile', type=int, default=224, help='tile size in pixels')
    idx.add_argument('--overlap', type=int, default=0, help='overlap between tiles (pixels)')
    idx.add_argument('--batch', type=int, default=32, help='tiles per forward pass')
    idx.add_argument('--bands', help='1-based red,green,blue bands (default: the first 3)')
    idx.add_argument('--stretch', default='auto',
                     help="'auto' (uint8 as is, else percentile), 'none', "
                     "'percentile[:LO,HI]', 'fixed:[MIN,]MAX'")
    idx.add_argument('--nodata', type=float, help="nodata value overriding the files' tags")
    idx.add_argument('--min-valid', type=float, default=0.0,
                     help='fraction of valid pixels a tile needs (all-nodata always skipped)')
    idx.add_argument('--chunk-tiles', type=int, default=1024,
                     help='tiles per committed chunk (the unit of resumption)')
    idx.add_argument('--dtype', default='float16', choices=('float16', 'float32'),
                     help='embedding dtype of a new archive')
    idx.add_argument('--device', default='cpu')
    idx.add_argument('--quiet', action='store_true', help='no progress lines')
    qry = sub.add_parser('query', help='search an archive with a text or an image')
    qry.add_argument('--db', required=True, help='archive folder')
    what = qry.add_mutually_exclusive_group(required=True)
    what.add_argument('--text', help='a description of what to find')
    what.add_argument('--image', help='an example image (PNG/JPEG/GeoTIFF)')
    qry.add_argument('--image-bands', help='1-based red,green,blue bands of --image')
    qry.add_argument('--top-k', type=int, default=10)
    qry.add_argument('--out', help='write the hits (.geojson, RFC 7946 lon/lat, or .gpkg)')
    qry.add_argument('--overwrite', action='store_true', help='replace an existing --out')
    qry.add_argument('--config', help='model config (default: the archive\'s)')
    qry.add_argument('--checkpoint', help='checkpoint (default: the archive\'s)')
    qry.add_argument('--backend', default='auto', choices=('auto', 'numpy', 'faiss'))
    qry.add_argument('--device', default='cpu')
    qry.add_argument('--json', action='store_true', help='print the hits as JSON lines')
    inf = sub.add_parser('info', help='describe an archive')
    inf.add_argument('--db', required=True, help='archive folder')
    return parser.parse_args(argv)


def _checkpoint(value: str | None) -> str | None:
    return None if value is None or value.lower() == 'none' else value


def _index(args: argparse.Namespace) -> int:
    from mmrs.apis.clip_search import CLIPArchiveSearch
    searcher = CLIPArchiveSearch(args.config, _checkpoint(args.checkpoint), args.device)
    summary = searcher.index(args.scenes, args.db, tile=args.tile, overlap=args.overlap,
                             batch=args.batch, bands=args.bands, stretch=args.stretch,
                             nodata=args.nodata, min_valid=args.min_valid,
                             chunk_tiles=args.chunk_tiles, dtype=args.dtype, quiet=args.quiet)
    print(summary)
    return 0


def _query(args: argparse.Namespace) -> int:
    from mmrs.apis.clip_index import TileArchive
    from mmrs.apis.clip_search import CLIPArchiveSearch
    if args.text is not None and not args.text.strip():
        raise ValueError('--text is empty; give a description such as "an airport"')
    archive = TileArchive.open(args.db)  # a missing archive fails before the model loads
    checkpoint = _checkpoint(args.checkpoint) if args.checkpoint else None
    searcher = CLIPArchiveSearch.for_archive(args.db, args.config, checkpoint, args.device)
    hits = searcher.query(args.db, text=args.text, image=args.image, top_k=args.top_k,
                          out=args.out, backend=args.backend, overwrite=args.overwrite,
                          image_bands=args.image_bands)
    for scene in archive.incomplete_scenes():
        print(f'warning: {scene["path"]} is only partly indexed and was not searched; run '
              'the index command again to finish it', file=sys.stderr)
    for hit in hits:
        if args.json:
            print(json.dumps(dict(hit.properties(), lonlat_bounds=hit.lonlat_bounds)))
        else:
            print(f'{hit.rank:3d}  {hit.score:.4f}  {hit.scene}  window '
                  f'{",".join(str(v) for v in hit.window)}  {hit.crs if len(hit.crs) < 40 else ""}')
    if args.out:
        print(f'{len(hits)} hits written to {args.out}', file=sys.stderr)
    return 0


def _info(args: argparse.Namespace) -> int:
    from mmrs.apis.clip_index import TileArchive
    archive = TileArchive.open(args.db)
    m = archive.manifest
    print(f'archive {args.db}: {len(archive)} searchable tiles, dim {archive.dim} '
          f'{archive.dtype}, model {m["model"].get("description", "")}')
    for s in archive.scenes:
        print(f'  [{s["status"]}] {s["path"]}: {s["height"]}x{s["width"]} {s["crs_name"][:40]} '
              f'tiles {s["num_tiles"]}, embedded {s.get("rows", "?")}, all-nodata skipped '
              f'{s.get("skipped_nodata", "?")}, tile {s["tiling"]["tile"]} overlap '
              f'{s["tiling"]["overlap"]}')
    return 0


def main(argv: list[str] | None = None) -> int:
    from mmrs.apis.clip_index import ArchiveLockedError
    args = parse_args(argv)
    try:
        return dict(index=_index, query=_query, info=_info)[args.command](args)
    except (OSError, ValueError, ImportError, ArchiveLockedError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
