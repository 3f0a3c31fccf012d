"""Look at what a change detector is fed: the dataset of a config, after its pipeline.

For each of the first ``--num`` samples of ``{split}_dataloader.dataset`` the pipeline runs
(augmentation included), and the two dates are taken back from ``inputs`` ``(2, C, H, W)`` and
drawn with their label map(s) by :class:`mmrs.visualization.ChangeLocalVisualizer` (percentile
stretch for multispectral / non-uint8 data, binary change in yellow, ignored pixels grey,
semantic maps in a second row). Figures go to ``--output-dir`` as ``<index>_<stem>.png`` and/or
to a window; with no display and no ``--output-dir`` they go to
``work_dirs/browse_dataset/<config name>``.

CONFIG is a path, ``mmrs::<path>`` or a path relative to the shipped ``configs/`` folder;
``--data-root DIR`` reads the data from another folder (as for ``tools/train.py``).

Example::

    python tools/analysis/browse_dataset.py configs/xxx.py --split train --num 20 \\
        --output-dir vis/train --not-show
"""
import argparse
import os
import os.path as osp
import sys
import warnings

from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Browse a change detection dataset')
    parser.add_argument('config', help='config file (path, mmrs::path or shipped name)')
    parser.add_argument('--split', default='train', choices=['train', 'val', 'test'],
                        help='which {split}_dataloader.dataset to browse')
    parser.add_argument('--output-dir', default=None, help='folder for the PNG figures')
    parser.add_argument('--not-show', action='store_true', help='never open a window')
    parser.add_argument('--show-interval', type=float, default=2.,
                        help='seconds each window stays open')
    parser.add_argument('--num', type=int, default=10, help='number of samples to draw')
    parser.add_argument('--data-root', metavar='DIR',
                        help='read every dataloader\'s dataset from DIR instead of the '
                        'config\'s data_root')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value')
    return parser.parse_args(argv)


def has_display() -> bool:
    """Whether a window can be opened (X11/Wayland on Linux; always on macOS/Windows)."""
    if sys.platform in ('darwin', 'win32'):
        return True
    return bool(os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))


def build_visualizer(cfg: Config):
    """A ChangeLocalVisualizer with the config's display settings but no vis backends."""
    from mmrs.registry import VISUALIZERS
    vis_cfg = dict(cfg.get('visualizer') or {})
    if vis_cfg.get('type') not in ('ChangeLocalVisualizer', 'mmrs.ChangeLocalVisualizer'):
        vis_cfg = dict(type='ChangeLocalVisualizer')
    vis_cfg.pop('vis_backends', None)
    vis_cfg.pop('save_dir', None)
    vis_cfg['name'] = 'browse_dataset'
    return VISUALIZERS.build(vis_cfg)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from mmrs.utils.config_path import resolve_config
    from mmrs.utils.data_root import set_data_root
    cfg = Config.fromfile(resolve_config(args.config))
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.data_root:
        set_data_root(cfg, args.data_root)

    from mmrs.registry import DATASETS
    from mmrs.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    init_default_scope(cfg.get('default_scope', 'mmrs'))

    dataset = DATASETS.build(cfg[f'{args.split}_dataloader'].dataset)
    visualizer = build_visualizer(cfg)
    visualizer.dataset_meta = dataset.metainfo

    show = not args.not_show and has_display()
    out_dir = args.output_dir
    if out_dir is None and not show:
        name = osp.splitext(osp.basename(args.config))[0]
        out_dir = osp.join('work_dirs', 'browse_dataset', name)
        if not args.not_show:
            warnings.warn(f'no display found: writing the figures to {out_dir} instead')
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)

    num = min(args.num, len(dataset))
    for idx in range(num):
        item = dataset[idx]
        inputs, sample = item['inputs'], item['data_samples']
        date1, date2 = (x.permute(1, 2, 0).cpu().numpy() for x in inputs)
        paths = sample.metainfo.get('img_path') or []
        stem = osp.splitext(osp.basename(paths[0]))[0] if paths else f'sample{idx}'
        names = ' | '.join(dict.fromkeys(osp.basename(p) for p in paths)) or stem
        caption = f'#{idx} {names}'
        if sample.metainfo.get('flip'):
            caption += f" flip:{sample.metainfo.get('flip_direction')}"
        out_file = None if out_dir is None else osp.join(out_dir, f'{idx:04d}_{stem}.png')
        visualizer.add_datasample(
            f'{idx:04d}_{stem}', (date1, date2), sample, draw_pred=False, show=show,
            wait_time=args.show_interval, out_file=out_file, caption=caption)
    if out_dir is not None:
        print(f'{num} figures written to {out_dir}')


if __name__ == '__main__':
    main()
