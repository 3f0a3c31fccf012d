"""Measure the inference and training throughput and peak memory of an mmrs change detector.

    python tools/analysis/benchmark.py CONFIG [--shape H W] [--batch N] [--iters K]
                                       [--warmup W] [--device cpu|cuda] [--threads T]
                                       [--skip-train] [--out bench.json]
                                       [--cfg-options key=value ...]

The model is built from the config with random weights and run on a synthetic batch of ``N``
image pairs of ``H x W`` (uint8 bands, random change labels), exactly as the runner feeds it:

- inference: ``model.test_step`` under ``torch.no_grad`` in eval mode (data preprocessor,
  forward, predictions at the original size);
- training: ``model.train_step`` with the config's ``optim_wrapper`` (data preprocessor,
  forward, losses, backward, optimizer step; AdamW lr 1e-4 if the config has none).

Each phase runs ``W`` untimed warm-up iterations, then ``K`` timed ones (CUDA synchronised);
throughput is ``N`` / the median iteration time, in images per second, where one image is one
bitemporal pair (one sample). Peak memory is ``torch.cuda.max_memory_allocated`` of the phase on
CUDA, and on the CPU the process's peak resident set size so far (``resource.getrusage``;
monotone over the run, so the training figure includes everything before it). Writes a JSON
summary to stdout and ``--out``.
"""
import argparse
import json
import os
import os.path as osp
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402

from mmrs.utils.flops import build_model_from_config, input_bands  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Throughput and memory of an mmrs model')
    parser.add_argument('config', help='config file (path, mmrs::path or shipped name)')
    parser.add_argument('--shape', type=int, nargs=2, default=[256, 256], metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=2, help='image pairs per iteration')
    parser.add_argument('--iters', type=int, default=10, help='timed iterations per phase')
    parser.add_argument('--warmup', type=int, default=2, help='untimed iterations per phase')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='cpu or cuda (default: cuda when available)')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--in-channels', type=int, default=None,
                        help='bands per date (default: from the config)')
    parser.add_argument('--skip-train', action='store_true', help='only time inference')
    parser.add_argument('--out', help='write the JSON summary to this file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. model.backbone.arch.dims=8')
    return parser.parse_args(argv)


def make_batch(batch: int, bands: int, height: int, width: int, num_semantic: int,
               seed: int = 0) -> dict:
    """A data-loader batch of random pairs with change, semantic and damage labels (each
    detector reads the targets it trains on: MambaBDA the localisation map in ``gt_sem_seg``
    and the grades 0..4 in ``gt_damage_seg``)."""
    from mmrs.structures import ChangeDataSample

    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (2, bands, height, width), generator=g,
                                    dtype=torch.uint8))
        frm = torch.randint(0, num_semantic + 1, (1, height, width), generator=g)
        to = torch.randint(0, num_semantic + 1, (1, height, width), generator=g)
        sample = ChangeDataSample(metainfo=dict(ori_shape=(height, width),
                                                img_shape=(height, width)))
        sample.gt_sem_seg = PixelData(data=(frm != to).long())
        sample.gt_sem_seg_from = PixelData(data=frm)
        sample.gt_sem_seg_to = PixelData(data=to)
        sample.gt_damage_seg = PixelData(
            data=torch.randint(0, 5, (1, height, width), generator=g) * (frm != to))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def peak_memory_mib(device: torch.device) -> float:
    """CUDA: bytes allocated at peak since the last reset; CPU: the process's peak RSS."""
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is in kilobytes on Linux, bytes on macOS
    scale = 1 if platform.system() == 'Darwin' else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def time_phase(step: Callable[[], object], iters: int, warmup: int,
               device: torch.device) -> dict:
    """Run ``step`` ``warmup`` then ``iters`` times; per-iteration seconds and peak memory."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return dict(median_s=statistics.median(times), mean_s=statistics.fmean(times),
                min_s=min(times), peak_memory_mib=round(peak_memory_mib(device), 1))


def build_optim_wrapper(cfg, model: torch.nn.Module, device: torch.device):
    """The config's optim wrapper (AdamW lr 1e-4 without one; no AMP wrapper on the CPU)."""
    from mmengine.optim import build_optim_wrapper as build

    wrapper_cfg = cfg.get('optim_wrapper')
    if wrapper_cfg is None:
        wrapper_cfg = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4))
    wrapper_cfg = wrapper_cfg.copy()
    if device.type != 'cuda' and wrapper_cfg.get('type') == 'AmpOptimWrapper':
        wrapper_cfg['type'] = 'OptimWrapper'
        wrapper_cfg.pop('loss_scale', None)
        wrapper_cfg.pop('dtype', None)
    return build(model, wrapper_cfg)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    height, width = args.shape
    for name, value in (('--shape', min(height, width)), ('--batch', args.batch),
                        ('--iters', args.iters)):
        if value < 1:
            sys.exit(f'benchmark.py: error: {name} must be >= 1')
    if args.warmup < 0:
        sys.exit('benchmark.py: error: --warmup must be >= 0')
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        sys.exit('benchmark.py: error: --device cuda but CUDA is not available')
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    try:
        cfg, model = build_model_from_config(args.config, args.cfg_options)
    except (FileNotFoundError, ValueError, KeyError) as error:
        sys.exit(f'benchmark.py: error: {error}')
    model = model.to(device)
    bands = args.in_channels or input_bands(cfg.model)
    batch = make_batch(args.batch, bands, height, width,
                       getattr(model, 'num_semantic_classes', 6))

    def infer() -> object:
        with torch.no_grad():
            return model.test_step(batch)

    model.eval()
    try:
        results = {'inference': time_phase(infer, args.iters, args.warmup, device)}
        if not args.skip_train:
            optim_wrapper = build_optim_wrapper(cfg, model, device)
            model.train()
            results['train'] = time_phase(lambda: model.train_step(batch, optim_wrapper),
                                          args.iters, args.warmup, device)
    except Exception as error:  # noqa: BLE001 - e.g. a size the architecture cannot take
        sys.exit(f'benchmark.py: error: {type(model).__name__} of {args.config} failed on '
                 f'{args.batch} pair(s) of {bands}x{height}x{width}: '
                 f'{type(error).__name__}: {error}')
    for phase in results.values():
        phase['images_per_s'] = round(args.batch / phase['median_s'], 3)
        for key in ('median_s', 'mean_s', 'min_s'):
            phase[key] = round(phase[key], 5)
    summary = {
        'config': args.config,
        'model': type(model).__name__,
        'device': str(device),
        'device_name': (torch.cuda.get_device_name(device) if device.type == 'cuda' else
                        platform.processor() or platform.machine()),
        'input_shape': [args.batch, 2, bands, height, width],
        'batch': args.batch,
        'iters': args.iters,
        'warmup': args.warmup,
        'torch_threads': torch.get_num_threads(),
        'torch': torch.__version__,
        **results,
        'memory': ('torch.cuda.max_memory_allocated per phase' if device.type == 'cuda' else
                   'process peak RSS so far (resource.getrusage)'),
        'image': 'one bitemporal pair (one sample)',
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w', encoding='utf-8') as f:
            json.dump(summary, f, indent=2)
            f.write('\n')
    return summary


if __name__ == '__main__':
    main()
