"""Whole-scene rotated detection: peak memory of ``tools/detect.py`` at 8k^2 vs 32k^2 pixels.

    nice -n 5 python benchmarks/rotated_scene_memory.py [--sizes 8192 32768]
        [--detector fake|tiny] [--patch 1024 --overlap 200 --batch 4] [--out FILE]

Scenes are synthetic uint8 RGB GeoTIFFs (UTM, 0.5 m), tiled 512 x 512 and deflate-compressed,
written strip by strip into a temporary folder (never whole in memory): a smooth periodic
texture (values <= 250) with one painted 40 x 24 "vehicle" (R = 255, G = B = 0) per 512-pixel
block, so detections grow with the scene as they would on real data.

Each size runs ``tools/detect.py`` (``main()``, DOTA patches 1024/200 by default, ``--overview``
and ``.gpkg`` output included) in a fresh subprocess; its peak RSS is the child's own
``ru_maxrss`` from ``os.wait4``. Detectors:

- ``fake`` (default): a registered stand-in model whose ``test_step`` finds the painted boxes in
  each patch with OpenCV (connected components; boxes cut by the patch edge are dropped), so a
  32k^2 scene (1600 patches) runs in minutes on a shared CPU. Everything but the network is
  the real path: windowed reads, the config's test pipeline, batching, class-wise rotated NMS
  merge, polygon and overview writing. A network's weights and activations add a constant
  (per batch), not a per-scene term;
- ``tiny``: a tiny random-weight Rotated RetinaNet (ResNet-18 at 1/8 width) built from
  ``configs/_base_/models/rotated_retinanet_r50_fpn.py``: the real model path (slow at 32k^2).

Writes ``benchmarks/results/rotated_scene_memory.json``; the goal is a peak flat within 10%
between the sizes.
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

PIPELINE = '''
test_pipeline = [dict(type='mmdet.LoadImageFromFile'),
                 dict(type='mmdet.PackDetInputs',
                      meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                 'scale_factor'))]
test_dataloader = dict(dataset=dict(metainfo=dict(classes=('vehicle', )),
                                    pipeline=test_pipeline))
'''
CONFIGS = dict(
    fake="default_scope = 'mmrs'\nmodel = dict(type='BenchPaintedBoxDetector')\n" + PIPELINE,
    tiny=('''_base_ = ['{root}/configs/_base_/models/rotated_retinanet_r50_fpn.py']
default_scope = 'mmrs'
model = dict(
    backbone=dict(depth=18, base_channels=8, stem_channels=8, init_cfg=None, frozen_stages=-1),
    neck=dict(in_channels=[8, 16, 32, 64], out_channels=16),
    bbox_head=dict(num_classes=1, in_channels=16, feat_channels=16, stacked_convs=1),
    test_cfg=dict(nms_pre=200, score_thr=0.05, max_per_img=100))
''' + PIPELINE))


# ------------------------------------------------------------------------- synthetic scene
def write_scene(path: str, size: int, block: int = 512, seed: int = 0) -> int:
    """Write the ``size x size`` scene strip by strip; returns the number of painted boxes."""
    import rasterio
    from rasterio.transform import Affine
    from rasterio.windows import Window
    from scipy import ndimage
    rng = np.random.default_rng(seed)
    texture = ndimage.gaussian_filter(rng.random((3, 1024, 1024)), (0, 4, 4), mode='wrap')
    texture = ((texture - texture.min()) / np.ptp(texture) * 250).astype(np.uint8)
    profile = dict(driver='GTiff', width=size, height=size, count=3, dtype='uint8',
                   crs='EPSG:32631', transform=Affine(0.5, 0, 500000, 0, -0.5, 5000000),
                   tiled=True, blockxsize=block, blockysize=block, compress='deflate',
                   BIGTIFF='IF_SAFER')
    cols = np.arange(size) % 1024
    painted = 0
    with rasterio.open(path, 'w', **profile) as dst:
        for y in range(0, size, block):
            h = min(block, size - y)
            strip = texture[:, (np.arange(y, y + h) + 37 * (y // block)) % 1024][:, :, cols]
            for x in range(0, size, block):
                key = (y // block) * 7919 + x // block
                oy, ox = 40 + key * 131 % max(h - 104, 1), 40 + key * 197 % max(block - 120, 1)
                strip[:, oy:oy + 24, x + ox:x + ox + 40] = np.array([255, 0, 0])[:, None, None]
                painted += 1
            dst.write(strip, window=Window(0, y, size, h))
    return painted


# ------------------------------------------------------------------------- child: one run
def register_fake() -> None:
    """Register the ``fake`` detector (finds the painted boxes of each patch)."""
    import cv2
    import torch
    from mmengine.model import BaseModel
    from mmengine.structures import InstanceData

    from mmrs.registry import MODELS

    @MODELS.register_module(force=True)
    class BenchPaintedBoxDetector(BaseModel):
        def forward(self, *args, **kwargs):
            raise NotImplementedError

        def test_step(self, data: dict) -> list:
            from mmdet.structures import DetDataSample
            from mmrotate.structures.bbox import RotatedBoxes
            out = []
            for img, sample in zip(data['inputs'], data['data_samples']):
                bgr = img.numpy()
                mask = ((bgr[2] == 255) & (bgr[1] == 0)).astype(np.uint8)
                n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
                boxes = []
                for x, y, w, h, _ in stats[1:n]:
                    if x > 0 and y > 0 and x + w < mask.shape[1] and y + h < mask.shape[0]:
                        boxes.append([x + w / 2, y + h / 2, w, h, 0.0])
                result = DetDataSample(metainfo=sample.metainfo)
                result.pred_instances = InstanceData(
                    bboxes=RotatedBoxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 5)),
                    scores=torch.full((len(boxes), ), 0.9),
                    labels=torch.zeros(len(boxes), dtype=torch.long))
                out.append(result)
            return out


def child(args: argparse.Namespace) -> None:
    import importlib.util

    import torch
    torch.set_num_threads(args.threads)
    if args.detector == 'fake':
        register_fake()
    spec = importlib.util.spec_from_file_location('detect_cli',
                                                  osp.join(REPO_ROOT, 'tools', 'detect.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    start = time.perf_counter()
    rc = module.main([args.config, 'none', '--image', args.image, '--out', args.out,
                      '--overview', args.out + '.jpg', '--patch', str(args.patch),
                      '--overlap', str(args.overlap), '--batch', str(args.batch), '--quiet',
                      '--overwrite'])
    import fiona
    with fiona.open(args.out) as src:
        count = len(src)
    print(json.dumps(dict(rc=rc, seconds=time.perf_counter() - start, detections=count)))


# ------------------------------------------------------------------------- parent
def run_child(image: str, size: int, args: argparse.Namespace, config: str,
              workdir: str) -> dict:
    out = osp.join(workdir, f'dets_{size}.gpkg')
    cmd = [sys.executable, osp.abspath(__file__), '--child', '--image', image, '--out', out,
           '--config', config, '--detector', args.detector, '--patch', str(args.patch),
           '--overlap', str(args.overlap), '--batch', str(args.batch),
           '--threads', str(args.threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait4 gives this child's own rusage (RUSAGE_CHILDREN would be the max over all runs)
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    record = dict(size=size, pixels=size * size, detector=args.detector,
                  peak_rss_mb=round(usage.ru_maxrss / 1024, 1))  # Linux: kilobytes
    if code != 0:
        record['error'] = f'exit {code}: {stderr.strip()[-800:]}'
        return record
    record.update(json.loads(stdout.strip().splitlines()[-1]))
    record['mpix_per_s'] = size * size / 1e6 / record['seconds']
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[8192, 32768])
    parser.add_argument('--detector', choices=sorted(CONFIGS), default='fake')
    parser.add_argument('--patch', type=int, default=1024)
    parser.add_argument('--overlap', type=int, default=200)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', default=osp.join(REPO_ROOT, 'benchmarks', 'results',
                                                  'rotated_scene_memory.json'))
    # child mode (internal)
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--image', help=argparse.SUPPRESS)
    parser.add_argument('--config', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    records = []
    with tempfile.TemporaryDirectory(prefix='mmrs-rot-bench-') as tmp:
        config = osp.join(tmp, f'{args.detector}.py')
        with open(config, 'w') as f:
            f.write(CONFIGS[args.detector].format(root=REPO_ROOT))
        for size in args.sizes:
            image = osp.join(tmp, f'scene_{size}.tif')
            t0 = time.perf_counter()
            painted = write_scene(image, size)
            print(f'{size}^2: scene written in {time.perf_counter() - t0:.1f} s '
                  f'({os.path.getsize(image) / 2 ** 20:.0f} MiB, {painted} boxes)', flush=True)
            rec = run_child(image, size, args, config, tmp)
            rec['painted'] = painted
            records.append(rec)
            print(json.dumps(rec), flush=True)
            os.remove(image)
    ok = [r for r in records if 'error' not in r]
    result = dict(
        benchmark='rotated_scene_memory',
        protocol=(f'tools/detect.py main() in a fresh subprocess per size (peak_rss_mb = its '
                  f'ru_maxrss); DOTA patches {args.patch}/{args.overlap}, batch {args.batch}, '
                  f'{args.threads} torch thread(s), .gpkg + 2048 px overview output; detector '
                  f'{args.detector!r} (see the module docstring)'),
        machine=dict(platform=platform.platform(), cpus=os.cpu_count()),
        records=records)
    if len(ok) >= 2:
        small, large = min(ok, key=lambda r: r['size']), max(ok, key=lambda r: r['size'])
        growth = large['peak_rss_mb'] / small['peak_rss_mb'] - 1
        result['peak_growth'] = round(growth, 4)
        result['goal_flat_within_10pct'] = bool(abs(growth) <= 0.10)
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=2)
    print(json.dumps({k: v for k, v in result.items() if k != 'records'}, indent=2))


if __name__ == '__main__':
    main()
