"""Evaluate a checkpoint on a config's test split, print the metrics and write them as JSON.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out metrics.json]
                         [--show-dir DIR] [--pred-dir DIR] [--data-root DIR]
                         [--allow-key-mismatch] [--cfg-options key=value ...]
                         [--launcher none|pytorch|slurm|mpi]

CONFIG is a path, ``mmrs::<path>`` or a path relative to the shipped ``configs/`` folder.
``--show-dir`` writes one picture per test sample: for change detection date 1, date 2,
prediction and ground truth side by side, changed pixels coloured TP green / FP red / FN
magenta; for rotated detectors the ground-truth and predicted boxes side by side (the
config's ``DetVisualizationHook``). ``--pred-dir`` writes
the predicted change maps (``mmrs.ChangePredictionWriterHook``). ``--data-root`` reads the
test data from another folder. A checkpoint whose weights do not fit the model (missing,
unexpected or resized keys) is an error listing them, unless ``--allow-key-mismatch``
(mmengine then loads what matches and warns). CLIP-family models (``CLIP``,
``CLIPZeroShotClassifier``) take the families' own files (RemoteCLIP, GeoRSCLIP, SkyCLIP,
FarSLIP, RS-M-CLIP) as well as mmrs runner checkpoints: the file goes to the model's
``checkpoint`` (layout auto-detected, or ``--checkpoint-layout``) and loads strictly.
For several processes use ``bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS``.
"""
import argparse
import json
import os
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, REPO_ROOT)

from mmengine.dist import is_main_process  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmrs.models.clip.layouts import CLIPCheckpointError  # noqa: E402
from mmrs.registry import RUNNERS  # noqa: E402
from mmrs.utils.checkpoint import (CheckpointKeyMismatchError,  # noqa: E402
                                   UnsafeCheckpointError)
from mmrs.utils.data_root import DataRootError  # noqa: E402
from mmrs.utils.launch import (LaunchError, add_runner_arguments,  # noqa: E402
                               distributed_session, exit_after_distributed_run,
                               load_run_config, prepare_launch)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (evaluate) an mmrs model')
    parser.add_argument('config', help='config file (path, mmrs::path or shipped name)')
    parser.add_argument('checkpoint', help='checkpoint file (or URL)')
    parser.add_argument('--out', help='write the metrics to this JSON file')
    parser.add_argument('--show-dir', help='write side-by-side result pictures here')
    parser.add_argument('--pred-dir', metavar='DIR',
                        help='write the predicted change maps here '
                        '(mmrs.ChangePredictionWriterHook)')
    parser.add_argument('--allow-key-mismatch', action='store_true',
                        help='load a checkpoint whose weights do not fit the model (missing, '
                        'unexpected or resized keys) partially, with a warning, instead of '
                        'failing')
    parser.add_argument('--checkpoint-layout', default=None,
                        help='CLIP-family models: the checkpoint\'s layout (remoteclip, '
                        'georsclip, skyclip, farslip, rsmclip, openclip; default auto)')
    add_runner_arguments(parser)
    return parser.parse_args()


def build_config(args: argparse.Namespace):
    """The config to test with: the file's, with the command-line options applied."""
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist')
    cfg = load_run_config(args)
    cfg.resume = False
    from mmrs.models.clip.routing import route_clip_checkpoint
    clip_family = route_clip_checkpoint(cfg, args.checkpoint, args.checkpoint_layout)
    if args.checkpoint_layout and not clip_family:
        raise ValueError('--checkpoint-layout is for CLIP-family models only')
    if not clip_family:  # CLIP-family models load (strictly) through their own loader
        cfg.load_from = args.checkpoint
    if args.show_dir:
        hook = cfg.default_hooks.get('visualization')
        if hook is None:
            raise ValueError('--show-dir needs default_hooks.visualization in the config')
        hook.draw = True
        hook.test_out_dir = osp.abspath(args.show_dir)
    custom_hooks = list(cfg.get('custom_hooks') or [])
    if args.pred_dir:
        custom_hooks.append(dict(type='mmrs.ChangePredictionWriterHook',
                                 out_dir=osp.abspath(args.pred_dir)))
    if not args.allow_key_mismatch and not clip_family:
        custom_hooks.append(dict(type='mmrs.CheckpointFitHook', checkpoint=args.checkpoint))
    cfg.custom_hooks = custom_hooks
    prepare_launch(cfg)
    return cfg


def main() -> None:
    args = parse_args()
    try:
        with distributed_session():
            cfg = build_config(args)
            # runner_type='FlexibleRunner' (FSDP / DeepSpeed strategies) is built by name
            runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
            metrics = runner.test()
            main_process = is_main_process()  # ask while the process group still exists
    except (CheckpointKeyMismatchError, UnsafeCheckpointError, LaunchError, DataRootError,
            FileNotFoundError, CLIPCheckpointError) as error:
        # the user's input is wrong: say what, without a traceback through mmengine
        sys.exit(f'tools/test.py: error: {error}')
    if not main_process:
        exit_after_distributed_run()
        return
    serialisable = {key: float(value) if hasattr(value, '__float__') else value
                    for key, value in metrics.items()}
    print(json.dumps(serialisable, indent=2, sort_keys=True))
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        partial = args.out + '.partial'
        with open(partial, 'w', encoding='utf-8') as f:
            json.dump(serialisable, f, indent=2, sort_keys=True)
        os.replace(partial, args.out)
    exit_after_distributed_run()


if __name__ == '__main__':
    main()
