"""Count the parameters and FLOPs of an mmrs change detector for one bitemporal input.

    python tools/analysis/get_flops.py CONFIG [--shape H W] [--in-channels C] [--max-depth 2]
                                       [--no-scan-flops] [--out flops.json]
                                       [--cfg-options key=value ...]

CONFIG is a path, ``mmrs::<path>`` or a path relative to the shipped ``configs/`` folder. The
model is built from the config with random weights, put in eval mode and traced on one pair
``(1, 2, C, H, W)`` (default 256 x 256, ``C`` from the config) in its ``'tensor'`` mode: the
backbone, neck and decode head, without the data preprocessor and post-processing.

FLOPs are mmengine's count (one fused multiply-add = one FLOP, the convention VMamba and
ChangeMamba report in); the selective scans of VMamba / MambaBCD are counted with the official
VMamba formula (:mod:`mmrs.utils.flops`) instead of the zero a plain trace gives
(``--no-scan-flops`` shows that zero). Elementwise ops (additions, activations) count zero, as in
fvcore; the JSON lists them under ``uncounted_ops``. Prints a per-module table and a JSON
summary, and writes the JSON to ``--out`` if given.
"""
import argparse
import json
import os
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

from mmrs.utils.flops import (analyze_complexity, build_model_from_config,  # noqa: E402
                              format_count, input_bands)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Parameters and FLOPs of an mmrs model')
    parser.add_argument('config', help='config file (path, mmrs::path or shipped name)')
    parser.add_argument('--shape', type=int, nargs=2, default=[256, 256], metavar=('H', 'W'),
                        help='input height and width of each date (default 256 256)')
    parser.add_argument('--in-channels', type=int, default=None,
                        help='bands per date (default: from the config)')
    parser.add_argument('--max-depth', type=int, default=2, help='module depth of the table')
    parser.add_argument('--no-scan-flops', action='store_true',
                        help='leave the selective scans at zero FLOPs (a plain mmengine count)')
    parser.add_argument('--out', help='write the JSON summary to this file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. model.backbone.arch.dims=8')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    height, width = args.shape
    if height < 1 or width < 1:
        sys.exit(f'get_flops.py: error: --shape must be positive, got {height} {width}')
    try:
        cfg, model = build_model_from_config(args.config, args.cfg_options)
        model.eval()
    except (FileNotFoundError, ValueError, KeyError) as error:
        sys.exit(f'get_flops.py: error: {error}')
    bands = args.in_channels or input_bands(cfg.model)
    inputs = torch.randn(1, 2, bands, height, width)
    try:
        result = analyze_complexity(model, (inputs, ), count_scan=not args.no_scan_flops,
                                    max_depth=args.max_depth)
    except Exception as error:  # noqa: BLE001 - e.g. a size the architecture cannot take
        sys.exit(f'get_flops.py: error: {type(model).__name__} of {args.config} failed on an '
                 f'input of shape {tuple(inputs.shape)}: {type(error).__name__}: {error}')
    summary = {
        'config': args.config,
        'model': type(model).__name__,
        'input_shape': list(inputs.shape),
        'flops': result.flops,
        'gflops': round(result.flops / 1e9, 4),
        'flops_str': format_count(result.flops),
        'params': result.params,
        'params_str': format_count(result.params),
        'selective_scan_flops': result.scan_flops,
        'selective_scan_counted': not args.no_scan_flops,
        'flops_by_module': result.by_module,
        'flops_by_operator': result.by_operator,
        'uncounted_ops': result.uncounted_ops,
        'convention': 'one fused multiply-add = 1 FLOP (mmengine/fvcore); selective scan: '
                      '9*B*L*D*N + B*D*L per call (official VMamba)',
    }
    print(result.table)
    print(f'Input {tuple(inputs.shape)}: FLOPs {summary["flops_str"]} (selective scan '
          f'{format_count(result.scan_flops)}), params {summary["params_str"]}')
    print(json.dumps(summary, indent=2))
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w', encoding='utf-8') as f:
            json.dump(summary, f, indent=2)
            f.write('\n')
    return summary


if __name__ == '__main__':
    main()
