"""CLIP archive search: indexing throughput, query latency and peak memory while indexing.

    python benchmarks/clip_search.py [--throughput-size 2048] [--rss-size 4096 16384]
        [--rows 10000 1000000] [--dim 512] [--queries 20] [--tile 224] [--batch 32]
        [--threads 1] [--skip-faiss] [--out benchmarks/results/clip_search.json]

Measurements (CPU, ``--threads`` torch threads):

- ``indexing``: tiles/s of :meth:`mmrs.apis.CLIPArchiveSearch.index` on a synthetic
  ``--throughput-size`` squared uint8 RGB GeoTIFF (UTM, tiled, deflate, a nodata collar) with a
  tiny random-weight CLIP (ViT, 32 px input, 2 layers, 64-d embeddings; see ``TINY``), so
  the number is the pipeline's overhead-bound rate (reading, padding, resizing, records,
  chunk commits), not a real model's;
- ``query``: latency of one query (median and p90 over ``--queries``) on archives of
  ``--rows`` synthetic unit vectors of dimension ``--dim`` stored as float16 in chunks of
  1024 rows (the default of ``index``): ``numpy`` (exact, streaming memory-mapped chunks) and
  ``faiss`` (``IndexFlatIP``; its one-time build / cache load is reported apart). The
  archives are written to a temporary folder (1e6 x 512 float16 = 1 GB);
- ``peak_rss``: the peak resident memory (``ru_maxrss`` of a fresh subprocess, via
  ``os.wait4``) of indexing one synthetic scene of each ``--rss-size`` squared, with the same
  process's RSS after building the model (before indexing) so the indexing share is visible;
  the scenes are written by another subprocess, strip by strip. Measured first, while this
  process is still small: Linux carries the parent's resident high-water mark into a child
  it starts (the child's ``ru_maxrss`` is at least the parent's RSS at ``exec``), so after the
  query measurements (gigabytes of vectors) a child would report the parent's memory.

Results go to ``--out`` as JSON (machine, versions, arguments, numbers).
"""
import argparse
import json
import os
import os.path as osp
import platform
import subprocess
import sys
import tempfile
import time


def _blas_threads_from_argv() -> None:
    """Give numpy's BLAS ``--threads`` threads; it reads them only when numpy loads. (With
    the default, one thread per core, a shared machine's load makes a 1024 x 512
    matrix-vector product take 15 ms instead of 0.03 ms: the threads spin.)"""
    argv = sys.argv[1:]
    threads = argv[argv.index('--threads') + 1] if '--threads' in argv[:-1] else '1'
    if argv[:1] == ['_rss_child']:
        threads = argv[5]
    for name in ('OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS', 'OMP_NUM_THREADS'):
        os.environ.setdefault(name, threads)


_blas_threads_from_argv()
import numpy as np  # noqa: E402

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, REPO_ROOT)

#: Tiny CLIP towers (random weights) of the benchmark.
TINY = dict(embed_dim=64,
            vision_cfg=dict(image_size=32, layers=2, width=64, patch_size=8, head_width=32),
            text_cfg=dict(context_length=16, width=32, heads=2, layers=1))


def write_scene(path: str, size: int, block: int = 512, seed: int = 0) -> None:
    """A ``size x size`` uint8 RGB GeoTIFF written strip by strip (never whole in memory),
    with a 100-pixel nodata (0) collar on the left."""
    import rasterio
    from rasterio.transform import Affine
    from rasterio.windows import Window
    rng = np.random.default_rng(seed)
    pattern = rng.integers(1, 255, (3, block, 1024), dtype=np.uint8)
    profile = dict(driver='GTiff', height=size, width=size, count=3, dtype='uint8',
                   crs='EPSG:32632', transform=Affine(0.5, 0, 500000, 0, -0.5, 5e6), nodata=0,
                   tiled=True, blockxsize=512, blockysize=512, compress='deflate')
    with rasterio.open(path, 'w', **profile) as dst:
        for y in range(0, size, block):
            h = min(block, size - y)
            strip = np.tile(np.roll(pattern, y // block * 37, axis=2),
                            (1, 1, -(-size // 1024)))[:, :h, :size].copy()
            strip[:, :, :100] = 0
            dst.write(strip, window=Window(0, y, size, h))


def build_searcher(threads: int):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    from mmrs.apis.clip_search import CLIPArchiveSearch, CLIPTileEncoder
    from mmrs.models.clip import CLIP
    model = CLIP(model_name='ViT-B-32', model_cfg=TINY, loss=None)
    return CLIPArchiveSearch(encoder=CLIPTileEncoder(model, model_cfg=dict(TINY)))


def rss_mb() -> float:
    """Current resident memory of this process (MB), from /proc (Linux)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float('nan')


def bench_indexing(args: argparse.Namespace, work: str) -> dict:
    scene = osp.join(work, f'throughput_{args.throughput_size}.tif')
    write_scene(scene, args.throughput_size)
    searcher = build_searcher(args.threads)
    start = time.perf_counter()
    summary = searcher.index([scene], osp.join(work, 'db_throughput'), tile=args.tile,
                             batch=args.batch)
    wall = time.perf_counter() - start
    return dict(scene=f'{args.throughput_size}x{args.throughput_size} uint8 RGB',
                tile=args.tile, batch=args.batch, tiles=summary.tiles,
                embedded=summary.embedded, skipped_nodata=summary.skipped_nodata,
                wall_s=round(wall, 3), tiles_per_s=round(summary.embedded / wall, 2),
                model='tiny CLIP ViT (image 32 px, 2 layers, width 64, D=64), random weights')


def synthetic_archive(root: str, rows: int, dim: int, chunk: int = 1024):
    from mmrs.apis.clip_index import ModelIdentity, TileArchive
    ident = ModelIdentity(dim=dim, config_hash='synthetic', weights_hash='synthetic',
                          preprocessing={})
    archive = TileArchive.open_or_create(root, ident, dtype='float16')
    scene = archive.begin_scene(dict(id='synthetic', path='synthetic', fingerprint={}))
    rng = np.random.default_rng(0)
    counts = []
    for k, start in enumerate(range(0, rows, chunk)):
        n = min(chunk, rows - start)
        v = rng.standard_normal((n, dim), dtype=np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        archive.write_chunk(scene['id'], k, v, [{}] * n, {})
        counts.append(n)
    archive.finish_scene(scene['id'], dict(chunk_rows=counts))
    return archive


def bench_query(args: argparse.Namespace, work: str) -> list[dict]:
    from mmrs.apis.clip_index import faiss_available, faiss_index, search_faiss, search_numpy
    out = []
    rng = np.random.default_rng(1)
    for rows in args.rows:
        root = osp.join(work, f'db_query_{rows}')
        t0 = time.perf_counter()
        archive = synthetic_archive(root, rows, args.dim)
        entry = dict(rows=rows, dim=args.dim, dtype='float16', chunk_rows=1024,
                     write_s=round(time.perf_counter() - t0, 2))
        queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        times = []
        for q in queries:
            t = time.perf_counter()
            search_numpy(archive, q, 10)
            times.append(time.perf_counter() - t)
        entry['numpy_ms'] = dict(median=round(1e3 * float(np.median(times)), 3),
                                 p90=round(1e3 * float(np.percentile(times, 90)), 3))
        if faiss_available() and not args.skip_faiss:
            import faiss
            faiss.omp_set_num_threads(args.threads)
            t = time.perf_counter()
            index = faiss_index(archive, cache=True)
            entry['faiss_build_s'] = round(time.perf_counter() - t, 3)
            t = time.perf_counter()
            index = faiss_index(archive, cache=True)
            entry['faiss_cache_load_s'] = round(time.perf_counter() - t, 3)
            times = []
            for q in queries:
                t = time.perf_counter()
                search_faiss(archive, q, 10, index=index)
                times.append(time.perf_counter() - t)
            entry['faiss_ms'] = dict(median=round(1e3 * float(np.median(times)), 3),
                                     p90=round(1e3 * float(np.percentile(times, 90)), 3))
            _, r_np = search_numpy(archive, queries[:3], 10)
            _, r_fa = search_faiss(archive, queries[:3], 10, index=index)
            entry['faiss_equals_numpy_top10'] = bool((r_np == r_fa).all())
        else:
            entry['faiss'] = 'not installed' if not faiss_available() else 'skipped'
        out.append(entry)
        import shutil
        shutil.rmtree(root, ignore_errors=True)
    return out


def bench_rss(args: argparse.Namespace, work: str) -> list[dict]:
    out = []
    for size in args.rss_size:
        scene = osp.join(work, f'rss_{size}.tif')
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, '_write', scene, str(size)], check=True)
        write_s = time.perf_counter() - t0
        cmd = [sys.executable, __file__, '_rss_child', scene, osp.join(work, f'db_rss_{size}'),
               str(args.tile), str(args.batch), str(args.threads)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        lines = [ln for ln in proc.stdout.read().splitlines() if ln.startswith('{')]
        proc.stdout.close()
        if os.waitstatus_to_exitcode(status) != 0 or not lines:
            raise RuntimeError(f'{cmd} failed')
        child = json.loads(lines[-1])  # the libraries print notices on stdout too
        pixels_mb = 3 * size ** 2 / 2 ** 20
        out.append(dict(scene=f'{size}x{size} uint8 RGB ({pixels_mb:.0f} MB of pixels)',
                        scene_write_s=round(write_s, 1),
                        peak_rss_mb=round(usage.ru_maxrss / 1024, 1), **child))
        os.remove(scene)
    return out


def rss_child(scene: str, db: str, tile: int, batch: int, threads: int) -> None:
    searcher = build_searcher(threads)
    before = rss_mb()
    start = time.perf_counter()
    summary = searcher.index([scene], db, tile=tile, batch=batch)
    print(json.dumps(dict(rss_after_model_mb=round(before, 1), tile=tile, batch=batch,
                          tiles=summary.tiles, embedded=summary.embedded,
                          index_wall_s=round(time.perf_counter() - start, 2))))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == '_write':
        write_scene(sys.argv[2], int(sys.argv[3]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == '_rss_child':
        rss_child(sys.argv[2], sys.argv[3], *(int(v) for v in sys.argv[4:7]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--throughput-size', type=int, default=2048)
    parser.add_argument('--rss-size', type=int, nargs='+', default=[4096, 16384])
    parser.add_argument('--rows', type=int, nargs='+', default=[10_000, 1_000_000])
    parser.add_argument('--dim', type=int, default=512)
    parser.add_argument('--queries', type=int, default=20)
    parser.add_argument('--tile', type=int, default=224)
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--skip-faiss', action='store_true')
    parser.add_argument('--skip', nargs='*', default=[], choices=('indexing', 'query', 'rss'))
    parser.add_argument('--work-dir', help='scratch folder (default: a temporary one)')
    parser.add_argument('--out', default=osp.join(REPO_ROOT, 'benchmarks', 'results',
                                                  'clip_search.json'))
    args = parser.parse_args()
    import torch
    result = dict(benchmark='clip_search', machine=platform.platform(),
                  processor=platform.processor(), cpu_count=os.cpu_count(),
                  python=platform.python_version(), torch=torch.__version__,
                  numpy=np.__version__, args=vars(args))
    try:
        import faiss
        result['faiss'] = faiss.__version__
    except ImportError:
        result['faiss'] = None
    with tempfile.TemporaryDirectory(dir=args.work_dir, prefix='mmrs-clip-bench-') as work:
        if 'rss' not in args.skip:  # first: see the docstring
            result['peak_rss'] = bench_rss(args, work)
            print('peak_rss', result['peak_rss'], flush=True)
        if 'indexing' not in args.skip:
            result['indexing'] = bench_indexing(args, work)
            print('indexing', result['indexing'], flush=True)
        if 'query' not in args.skip:
            result['query'] = bench_query(args, work)
            print('query', result['query'], flush=True)
    from mmrs.geo.atomic import atomic_output
    with atomic_output(args.out, overwrite=True) as tmp:
        with open(tmp, 'w') as f:
            json.dump(result, f, indent=1)
    print(f'written {args.out}')


if __name__ == '__main__':
    main()
