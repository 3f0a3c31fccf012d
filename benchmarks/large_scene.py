"""Whole-scene change detection: throughput and peak memory of mmrs' streaming inferencer
against loading the scene whole ("naive") and mmseg-style in-memory sliding windows ("slide").

    nice -n 5 python benchmarks/large_scene.py [--sizes 8192 16384 32768] [--tile 512]
        [--overlap 128] [--batch 8] [--threads 1] [--budget-s 720] [--out FILE]

Scenes are synthetic uint8 RGB GeoTIFF pairs of ``size x size`` pixels (UTM, 0.5 m), written
strip by strip with rasterio as tiled (512 x 512), deflate-compressed files into a temporary
folder, so the benchmark itself never holds a scene in memory. The model is FC-Siam-diff with
the sweep's tiny widths (``TINY_OVERRIDES['fc_siam_diff.py']`` of
``tests/models/test_model_sweep.py``), random weights, CPU, ``--threads`` torch threads.

Methods (each measurement runs in a fresh subprocess; its peak RSS is the child's own
``ru_maxrss`` as reported by ``os.wait4``, so runs do not inherit each other's peaks):

- ``mmrs``: :class:`mmrs.apis.ChangeDetectionInferencer` (windowed reads, batches of
  ``--batch`` tiles, cosine blending, block-wise GeoTIFF output), wall time of the call;
- ``model``: the model alone on the same tiles: the same grid, the same batches, the same tile
  shapes, inputs prepared once per shape before the clock starts, timed through the
  inferencer's ``predict_tiles`` (data preprocessor + ``test_step`` + softmax). Tiling + I/O
  overhead is ``(mmrs - model) / model``. On a shared machine the two runs see different
  loads, so the ``mmrs`` run also times its own calls of ``predict_tiles``
  (``seconds_in_model``) and ``overhead_same_run = (wall - in model) / in model`` is the
  overhead under the same load: what the calling thread does besides the model (waiting for
  tiles, blending, handing blocks to the writer);
- ``naive``: read both dates whole, the test pipeline and one ``test_step`` on the whole scene
  (``test_cfg.mode='whole'``), write the class map whole;
- ``slide``: read both dates whole, one ``test_step`` with the detector's own
  ``test_cfg.mode='slide'`` (``crop_size=tile``, ``stride=tile-overlap``, mmseg's algorithm:
  crops one by one, logits summed into a full-scene buffer and divided by the count), write the
  class map whole.

``naive`` and ``slide`` hold the scene (and, for ``naive``, every activation of the scene) in
memory. Before running them at a size the script measures them at two small calibration sizes,
fits ``peak = a + b * pixels`` and skips the size (``"skipped": reason``, with the estimate)
when the estimate exceeds ``--mem-fraction`` of the memory available now. A method whose estimated time at a size
(its time at the previous size, scaled by pixels) does not fit the remaining ``--budget-s``
is recorded as not run, with the estimate. Writes
``benchmarks/results/large_scene.json``.
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

import numpy as np

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, REPO_ROOT)

METHODS = ('mmrs', 'model', 'naive', 'slide')
IN_MEMORY = ('naive', 'slide')
CALIBRATION_SIZES = (1024, 2048)
#: FC-Siam-diff with the sweep's tiny widths (kept equal to TINY_OVERRIDES['fc_siam_diff.py']).
CONFIG = '''
_base_ = ['{root}/configs/_base_/models/fc_siam_diff.py',
          '{root}/configs/_base_/datasets/synthetic.py']
default_scope = 'mmrs'
model = dict(backbone=dict(channels=(4, 8, 16, 32)),
             decode_head=dict(in_channels=(4, 8, 16, 32, 32), decoder_channels=(4, 8, 16, 32)))
'''


# ------------------------------------------------------------------------- synthetic scenes
def write_scene(path: str, size: int, date: int, block: int = 512, seed: int = 0) -> None:
    """A ``size x size`` uint8 RGB GeoTIFF, written strip by strip (never whole in memory).

    Date 1 is a smooth texture (a 1024-pixel periodic pattern shifted per strip); date 2 is the
    same with one repainted 64 x 80 rectangle per 512-pixel block, so both are realistic to
    compress and a trained model would have something to find.
    """
    import rasterio
    from rasterio.transform import Affine
    from rasterio.windows import Window
    from scipy import ndimage
    rng = np.random.default_rng(seed)
    texture = ndimage.gaussian_filter(rng.random((3, 1024, 1024)), (0, 4, 4), mode='wrap')
    texture = ((texture - texture.min()) / np.ptp(texture) * 255).astype(np.uint8)
    profile = dict(driver='GTiff', width=size, height=size, count=3, dtype='uint8',
                   crs='EPSG:32631', transform=Affine(0.5, 0, 500000, 0, -0.5, 5000000),
                   tiled=True, blockxsize=block, blockysize=block, compress='deflate',
                   BIGTIFF='IF_SAFER')
    cols = np.arange(size) % 1024
    with rasterio.open(path, 'w', **profile) as dst:
        for y in range(0, size, block):
            h = min(block, size - y)
            rows = (np.arange(y, y + h) + 37 * (y // block)) % 1024
            strip = texture[:, rows][:, :, cols]
            if date == 2:
                for x in range(0, size, block):
                    key = (y // block) * 7919 + x // block
                    oy, ox = key * 131 % max(h - 64, 1), key * 197 % max(block - 80, 1)
                    strip[:, oy:oy + 64, x + ox:x + ox + 80] = (key * np.array([53, 97, 151])
                                                                % 256)[:, None, None]
            dst.write(strip, window=Window(0, y, size, h))


# ------------------------------------------------------------------------- child: one run
def _inferencer(config: str, slide: tuple[int, int] | None = None):
    from mmengine.config import Config

    from mmrs.apis import ChangeDetectionInferencer
    cfg = Config.fromfile(config)
    if slide is not None:
        cfg.model.test_cfg = dict(mode='slide', crop_size=slide[0], stride=slide[1])
    return ChangeDetectionInferencer(cfg)


def _write_whole(path: str, pair, classes: np.ndarray) -> None:
    from mmrs.geo.writer import GeoTiffWriter
    with GeoTiffWriter(path, pair.height, pair.width, pair.crs, pair.transform) as writer:
        writer.write(0, 0, classes, None, np.zeros(classes.shape, bool))


def child(args: argparse.Namespace) -> dict:
    """Run one method on one scene; return its timings (peak RSS is measured by the parent)."""
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from mmrs.geo.raster import open_pair
    from mmrs.geo.tiling import Tile, TileGrid
    method, out = args.child, osp.join(args.workdir, f'out_{args.child}_{os.getpid()}.tif')
    stride = TileGrid(args.tile * 4, args.tile * 4, args.tile, args.overlap).stride
    inferencer = _inferencer(args.config, (args.tile, stride) if method == 'slide' else None)
    record: dict = {}
    if method == 'mmrs':
        in_model = [0.0]
        predict = inferencer.predict_tiles

        def timed(*a, **k):  # the calling thread's time inside the model, same run
            t0 = time.perf_counter()
            try:
                return predict(*a, **k)
            finally:
                in_model[0] += time.perf_counter() - t0

        inferencer.predict_tiles = timed
        summary = inferencer(args.t1, args.t2, out, tile=args.tile, overlap=args.overlap,
                             batch=args.batch, quiet=True)
        record.update(seconds=summary.wall_s, protocol=summary.protocol, tiles=summary.tiles,
                      seconds_in_model=in_model[0])
    elif method == 'model':
        with open_pair(args.t1, args.t2) as pair:
            grid = TileGrid(pair.height, pair.width, args.tile, args.overlap)
            tiles, cache = list(grid), {}
            for t in tiles:  # one prepared input per tile shape, before the clock starts
                if (t.height, t.width) not in cache:
                    cache[t.height, t.width] = inferencer.prepare_tile(
                        pair, t, *pair.read(t.y, t.x, t.height, t.width))
            start = time.perf_counter()
            for i in range(0, len(tiles), args.batch):
                chunk = tiles[i:i + args.batch]
                inferencer.predict_tiles(pair, chunk, [cache[t.height, t.width] for t in chunk])
            record.update(seconds=time.perf_counter() - start, tiles=len(tiles),
                          protocol=grid.protocol())
    else:
        start = time.perf_counter()
        with open_pair(args.t1, args.t2) as pair:
            whole = Tile(0, 0, 0, 0, pair.height, pair.width)
            img1, img2, invalid = pair.read(0, 0, pair.height, pair.width)
            inputs = inferencer.prepare_tile(pair, whole, img1, img2, invalid)
            del img1, img2
            prob = inferencer.predict_tiles(pair, [whole], [inputs])[0]
            del inputs
            _write_whole(out, pair, (prob[0] > 0.5).astype(np.uint8))
        record.update(seconds=time.perf_counter() - start,
                      protocol=(f'whole scene, test_cfg.mode=slide crop={args.tile} '
                                f'stride={stride}' if method == 'slide'
                                else 'whole scene, test_cfg.mode=whole'))
    if osp.exists(out):
        os.remove(out)
    return record


# ------------------------------------------------------------------------- parent
def run_child(method: str, t1: str, t2: str, size: int, args: argparse.Namespace,
              config: str, workdir: str) -> dict:
    """One measurement in a fresh process; adds ``peak_rss_mb`` (the child's ru_maxrss)."""
    cmd = [sys.executable, osp.abspath(__file__), '--child', method, '--t1', t1, '--t2', t2,
           '--config', config, '--workdir', workdir, '--tile', str(args.tile),
           '--overlap', str(args.overlap), '--batch', str(args.batch),
           '--threads', str(args.threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait4 gives this child's own rusage (RUSAGE_CHILDREN would be the max over all runs)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    record = dict(size=size, method=method, pixels=size * size)
    if proc.returncode != 0:
        record.update(error=f'exit {proc.returncode}: {stderr.strip()[-800:]}')
        record['peak_rss_mb'] = usage.ru_maxrss / 1024
        return record
    result = json.loads(stdout.strip().splitlines()[-1])
    record.update(result)
    record['mpix_per_s'] = size * size / 1e6 / result['seconds']
    record['peak_rss_mb'] = usage.ru_maxrss / 1024  # Linux: kilobytes
    return record


def load_records(path: str) -> list[dict]:
    """Records of an earlier run: its result JSON or its stdout (JSON lines)."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    try:
        data = json.loads(text)
        return list(data.get('calibration', [])) + list(data.get('records', []))
    except json.JSONDecodeError:
        lines = [json.loads(line) for line in text.splitlines() if line.startswith('{')]
        return [r for r in lines if 'method' in r]


def available_mb() -> float:
    with open('/proc/meminfo') as f:
        info = dict(line.split(':', 1) for line in f)
    return int(info['MemAvailable'].split()[0]) / 1024


def fit_memory(points: list[tuple[int, float]]) -> tuple[float, float]:
    """``peak_mb = a + b * pixels`` through the calibration points."""
    (p0, m0), (p1, m1) = points[0], points[-1]
    b = (m1 - m0) / max(p1 - p0, 1)
    return m0 - b * p0, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[8192, 16384, 32768])
    parser.add_argument('--methods', nargs='+', default=list(METHODS), choices=METHODS,
                        help='run in this order (the budget check is per method)')
    parser.add_argument('--tile', type=int, default=512)
    parser.add_argument('--overlap', type=int, default=128)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--budget-s', type=float, default=720.0,
                        help='wall-time budget of the measurements (scene writing excluded)')
    parser.add_argument('--mem-fraction', type=float, default=0.6,
                        help='skip naive/slide when their estimated peak exceeds this '
                        'fraction of MemAvailable')
    parser.add_argument('--out', default=osp.join(REPO_ROOT, 'benchmarks', 'results',
                                                  'large_scene.json'))
    parser.add_argument('--tmpdir', default=None, help='where the scenes are written')
    parser.add_argument('--reuse', help='JSON-lines log (this script\'s stdout) or result '
                        'file whose records (calibration, measured or skipped runs) are kept '
                        'instead of measured again')
    # child mode (internal)
    parser.add_argument('--child', choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument('--t1', help=argparse.SUPPRESS)
    parser.add_argument('--t2', help=argparse.SUPPRESS)
    parser.add_argument('--config', help=argparse.SUPPRESS)
    parser.add_argument('--workdir', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return

    records: list[dict] = []
    started = time.perf_counter()
    reused = load_records(args.reuse) if args.reuse else []
    kept = {(r['size'], r['method']): r for r in reused if not r.get('calibration')
            and ('seconds' in r or 'skipped' in r)}
    with tempfile.TemporaryDirectory(dir=args.tmpdir, prefix='mmrs_large_scene_') as tmp:
        config = osp.join(tmp, 'fc_siam_diff_tiny.py')
        with open(config, 'w') as f:
            f.write(CONFIG.format(root=REPO_ROOT))

        def scene(size: int) -> tuple[str, str, float]:
            t0 = time.perf_counter()
            paths = osp.join(tmp, f't1_{size}.tif'), osp.join(tmp, f't2_{size}.tif')
            for date, path in enumerate(paths, 1):
                write_scene(path, size, date)
            return *paths, time.perf_counter() - t0

        def drop(paths: tuple[str, ...]) -> None:
            for p in paths:
                os.remove(p)

        memory: dict[str, tuple[float, float]] = {}
        wanted_in_memory = [m for m in args.methods if m in IN_MEMORY]
        calibration = [dict(r, reused=True) for r in reused if r.get('calibration')]
        if wanted_in_memory and not calibration:
            for size in CALIBRATION_SIZES:
                t1, t2, _ = scene(size)
                for method in wanted_in_memory:
                    rec = run_child(method, t1, t2, size, args, config, tmp)
                    rec['calibration'] = True
                    calibration.append(rec)
                    print(json.dumps(rec), flush=True)
                drop((t1, t2))
        for method in wanted_in_memory:
            pts = [(r['pixels'], r['peak_rss_mb']) for r in calibration
                   if r['method'] == method and 'error' not in r]
            if len(pts) >= 2:
                memory[method] = fit_memory(pts)

        rate: dict[str, float] = {}  # seconds per pixel, from the last size measured

        def not_run(size: int, method: str, why: str) -> None:
            rec = dict(size=size, method=method, pixels=size * size, not_run=why,
                       estimated_seconds=rate.get(method, 0.0) * size * size)
            if method in memory:
                rec['estimated_peak_rss_mb'] = memory[method][0] + memory[method][1] * size ** 2
            records.append(rec)
            print(json.dumps(rec), flush=True)

        def over_budget(size: int, method: str) -> str | None:
            if method not in rate:
                return None
            left = args.budget_s - (time.perf_counter() - started)
            need = rate[method] * size * size
            if need <= left:
                return None
            return (f'estimated {need:.0f} s (the previous size scaled by pixels) exceeds the '
                    f'{max(left, 0):.0f} s left of --budget-s {args.budget_s:.0f}; rerun with '
                    'a larger budget')

        def memory_skip(size: int, method: str) -> str | None:
            if method not in IN_MEMORY:
                return None
            if method not in memory:
                return 'memory calibration failed'
            a, b = memory[method]
            need, have = a + b * size * size, available_mb()
            if need <= args.mem_fraction * have:
                return None
            return (f'estimated peak RSS {need / 1024:.1f} GiB (fit {a:.0f} MB + '
                    f'{b * 1e6:.1f} MB/Mpix over {CALIBRATION_SIZES} px scenes) > '
                    f'{args.mem_fraction:.0%} of the {have / 1024:.1f} GiB available')

        for size in args.sizes:
            pixels = size * size
            for method in args.methods:
                if (size, method) in kept:
                    rec = dict(kept[size, method], reused=True)
                    records.append(rec)
                    if 'seconds' in rec:
                        rate[method] = rec['seconds'] / pixels
            todo = [m for m in args.methods if (size, m) not in kept
                    and over_budget(size, m) is None and memory_skip(size, m) is None]
            if not todo:
                for method in args.methods:
                    if (size, method) in kept:
                        continue
                    why = memory_skip(size, method)
                    if why is not None:
                        records.append(dict(size=size, method=method, pixels=pixels,
                                            estimated_peak_rss_mb=sum(memory[method][i]
                                                                      * pixels ** i
                                                                      for i in (0, 1)),
                                            skipped=why))
                    else:
                        not_run(size, method, over_budget(size, method))
                continue
            t1, t2, write_s = scene(size)
            print(f'# scene {size}^2 written in {write_s:.0f} s', flush=True)
            for method in args.methods:
                if (size, method) in kept:
                    continue
                why = memory_skip(size, method)
                if why is not None:
                    a, b = memory[method] if method in memory else (0.0, 0.0)
                    rec = dict(size=size, method=method, pixels=pixels,
                               estimated_peak_rss_mb=a + b * pixels, skipped=why)
                    records.append(rec)
                    print(json.dumps(rec), flush=True)
                    continue
                why = over_budget(size, method)
                if why is not None:
                    not_run(size, method, why)
                    continue
                rec = run_child(method, t1, t2, size, args, config, tmp)
                if 'seconds' in rec:
                    rate[method] = rec['seconds'] / pixels
                records.append(rec)
                print(json.dumps(rec), flush=True)
            drop((t1, t2))

    by = {(r['size'], r['method']): r for r in records if 'seconds' in r}
    summary = []
    for size in args.sizes:
        if (size, 'mmrs') in by and (size, 'model') in by:
            m, p = by[size, 'mmrs']['seconds'], by[size, 'model']['seconds']
            row = dict(size=size, mmrs_seconds=m, model_seconds=p, overhead=(m - p) / p)
            inside = by[size, 'mmrs'].get('seconds_in_model')
            if inside:
                row.update(mmrs_seconds_in_model=inside,
                           overhead_same_run=(m - inside) / inside)
            summary.append(row)
    mmrs_rss = [by[s, 'mmrs']['peak_rss_mb'] for s in args.sizes if (s, 'mmrs') in by]
    result = dict(
        benchmark='large_scene',
        description='synthetic uint8 RGB GeoTIFF pairs, tiny FC-Siam-diff (random weights), '
                    'CPU; each record one fresh subprocess (peak_rss_mb = its ru_maxrss)',
        platform=dict(python=platform.python_version(), machine=platform.machine(),
                      cpus=os.cpu_count(), threads=args.threads,
                      mem_total_gib=round(os.sysconf('SC_PAGE_SIZE')
                                          * os.sysconf('SC_PHYS_PAGES') / 2**30, 1),
                      note='shared machine (other jobs running); nice -n 5'),
        settings=dict(tile=args.tile, overlap=args.overlap, batch=args.batch),
        records=records, calibration=calibration, overhead=summary,
        mmrs_peak_rss_spread=(max(mmrs_rss) / min(mmrs_rss) - 1) if mmrs_rss else None)
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=1)
    print(json.dumps(dict(overhead=summary, mmrs_peak_rss_spread=result['mmrs_peak_rss_spread'])))


if __name__ == '__main__':
    main()
