"""Anchor assignment on the CPU: mmrotate's ``RBboxOverlaps2D`` vs mmrs's ``SparseRBboxOverlaps2D``.

    nice -n 5 python benchmarks/rotated_assign.py [--iters 3] [--out FILE]

Data: the real DOTA sample scenes P0706 and P1888 (``../shared/data/dota_samples/example``)
split into 512x512 patches (100 px overlap) by :func:`mmrs.datasets.dota_split.split_dataset`,
read through the training pipeline of
``configs/rotated_retinanet/rotated_retinanet_r18_fpn_cpu_dota_samples.py`` (its random flip
switched off so both runs see the same boxes). Single thread (``torch.set_num_threads(1)``).

1. **Assigner**: for every patch, the head's real anchors (the config's one anchor a location,
   and mmrotate's 3 scales x 3 ratios) are assigned to the patch's objects by the config's
   ``MaxIoUAssigner`` with each calculator. Reports seconds per image, the speed-up, the largest
   absolute difference of the IoU matrices and whether the assignments (``gt_inds``,
   ``max_overlaps``, ``labels``) are identical.
2. **Training iteration**: forward (loss) + backward + AdamW step of the config's model on a
   batch of 2 patches (the config's batch size), median of ``--iters`` timed iterations after
   one warm-up, with each calculator; and a cProfile of one iteration with each, naming the
   share of the time spent in ``box_iou_rotated``.

Writes ``benchmarks/results/rotated_assign.json``.
"""
import argparse
import cProfile
import copy
import json
import logging
import os
import os.path as osp
import platform
import pstats
import statistics
import sys
import tempfile
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402

SHARED = os.environ.get('MMRS_SHARED_DATA', osp.join(REPO_ROOT, '..', 'shared', 'data'))
CONFIG = osp.join(REPO_ROOT, 'configs', 'rotated_retinanet',
                  'rotated_retinanet_r18_fpn_cpu_dota_samples.py')
SCENES = ('P0706', 'P1888')
BEFORE = dict(type='mmrotate.RBboxOverlaps2D')
AFTER = dict(type='SparseRBboxOverlaps2D')
ANCHOR_SETTINGS = {
    'config (1 anchor a location)': dict(scales_per_octave=1, ratios=[1.0]),
    'mmrotate (3 scales x 3 ratios)': dict(scales_per_octave=3, ratios=[1.0, 0.5, 2.0]),
}


def split_scenes(root: str) -> str:
    """Symlink the sample scenes under ``root/raw`` and split them into 512 px patches."""
    from mmrs.datasets.dota_split import split_dataset
    src = osp.join(SHARED, 'dota_samples', 'example')
    for sub, ext in (('images', '.png'), ('labelTxt', '.txt')):
        os.makedirs(osp.join(root, 'raw', sub), exist_ok=True)
        for scene in SCENES:
            path = osp.join(src, sub, scene + ext)
            if not osp.isfile(path):
                raise FileNotFoundError(f'DOTA sample scene missing: {path!r} '
                                        '(set MMRS_SHARED_DATA)')
            os.symlink(path, osp.join(root, 'raw', sub, scene + ext))
    split_dataset(osp.join(root, 'raw', 'images'), osp.join(root, 'raw', 'labelTxt'),
                  osp.join(root, 'split'), subsize=512, gap=100)
    return osp.join(root, 'split')


def load_config(data_root: str, calculator: dict, anchors: dict | None = None):
    """The CPU config on ``data_root``, without random flips, with ``calculator`` for assignment."""
    from mmengine.config import Config
    cfg = Config.fromfile(CONFIG)
    ds = cfg.train_dataloader.dataset
    ds.data_root = data_root
    ds.data_prefix = dict(img_path='images/', ann_path='labelTxt/')
    ds.ann_file = ''
    ds.pipeline = [s for s in ds.pipeline if s.type != 'mmdet.RandomFlip']
    cfg.model.train_cfg.assigner.iou_calculator = copy.deepcopy(calculator)
    if anchors is not None:
        cfg.model.bbox_head.anchor_generator.update(anchors)
    return cfg


def build(cfg):
    from mmrs.registry import DATASETS, MODELS
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # init_weights logs every parameter
    model.init_weights()
    logger.setLevel(level)
    model.train()
    return dataset, model


def bench_assigner(data_root: str) -> dict:
    """Seconds per image of the assigner with each calculator, per anchor setting."""
    from mmengine.dataset import pseudo_collate
    from mmdet.structures.bbox import cat_boxes
    from mmengine.structures import InstanceData
    from mmrs.registry import TASK_UTILS
    out = {}
    for name, anchors in ANCHOR_SETTINGS.items():
        cfg = load_config(data_root, BEFORE, anchors)
        dataset, model = build(cfg)
        head = model.bbox_head
        assign_cfg = cfg.model.train_cfg.assigner
        assigners = {}
        for key, calc in (('before', BEFORE), ('after', AFTER)):
            a = copy.deepcopy(assign_cfg)
            a.iou_calculator = calc
            assigners[key] = TASK_UTILS.build(a)
        seconds = {'before': [], 'after': []}
        max_diff, identical, n_anchors, n_gts = 0.0, True, [], []
        for idx in range(len(dataset)):
            data = model.data_preprocessor(pseudo_collate([dataset[idx]]), True)
            sample = data['data_samples'][0]
            gt = sample.gt_instances
            if len(gt) == 0:
                continue
            shape = data['inputs'].shape[-2:]
            sizes = [(-(-shape[0] // sh), -(-shape[1] // sw))  # ceil: stride-2 convs, pad 1
                     for sw, sh in head.prior_generator.strides]
            anchor_list, _ = head.get_anchors(sizes, [sample.metainfo], device='cpu')
            priors = cat_boxes(anchor_list[0])
            pred = InstanceData(priors=priors)
            results, overlaps = {}, {}
            for key, assigner in assigners.items():
                start = time.perf_counter()
                results[key] = assigner.assign(pred, gt)
                seconds[key].append(time.perf_counter() - start)
                overlaps[key] = assigner.iou_calculator(gt.bboxes, priors)
            n_anchors.append(len(priors))
            n_gts.append(len(gt))
            max_diff = max(max_diff, float((overlaps['before'] - overlaps['after']).abs().max()))
            b, a = results['before'], results['after']
            identical &= (torch.equal(b.gt_inds, a.gt_inds)
                          and torch.equal(b.max_overlaps, a.max_overlaps)
                          and torch.equal(b.labels, a.labels))
        before, after = statistics.mean(seconds['before']), statistics.mean(seconds['after'])
        out[name] = dict(
            images=len(n_gts), anchors_per_image=statistics.mean(n_anchors),
            objects_per_image=dict(mean=statistics.mean(n_gts), max=max(n_gts)),
            seconds_per_image_before=round(before, 4), seconds_per_image_after=round(after, 4),
            speedup=round(before / after, 1), max_abs_diff_iou=max_diff,
            assignments_identical=bool(identical))
        print(name, json.dumps(out[name]), flush=True)
    return out


def _batch(dataset, start: int = 0, size: int = 2) -> list:
    return [dataset[(start + i) % len(dataset)] for i in range(size)]


def _step(model, optim, items) -> float:
    from mmengine.dataset import pseudo_collate
    start = time.perf_counter()
    data = model.data_preprocessor(pseudo_collate(items), True)
    loss, _ = model.parse_losses(model(**data, mode='loss'))
    optim.zero_grad()
    loss.backward()
    optim.step()
    return time.perf_counter() - start


def bench_train(data_root: str, iters: int) -> dict:
    """Median seconds of a training iteration (batch 2) with each calculator, and profiles."""
    out = {}
    for key, calc in (('before', BEFORE), ('after', AFTER)):
        cfg = load_config(data_root, calc)
        dataset, model = build(cfg)
        optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
        # the patches with the most objects: the case assignment is slowest for
        order = sorted(range(len(dataset)), key=lambda i: -len(dataset[i]['data_samples']
                                                             .gt_instances))
        batches = [[dataset[order[(2 * k + j) % len(order)]] for j in range(2)]
                   for k in range(iters + 1)]
        _step(model, optim, batches[0])  # warm-up
        times = [_step(model, optim, b) for b in batches[1:]]
        out[f'seconds_per_iter_{key}'] = round(statistics.median(times), 3)
        out[f'objects_per_batch_{key}'] = [sum(len(i['data_samples'].gt_instances) for i in b)
                                           for b in batches[1:]]
        prof = cProfile.Profile()
        prof.enable()
        total = _step(model, optim, batches[1])
        prof.disable()
        stats = pstats.Stats(prof)
        iou = sum(v[3] for k, v in stats.stats.items() if k[2] == 'box_iou_rotated')
        out[f'profile_{key}'] = dict(seconds=round(total, 3),
                                     box_iou_rotated_seconds=round(iou, 3),
                                     box_iou_rotated_share=round(iou / total, 3))
    out['speedup'] = round(out['seconds_per_iter_before'] / out['seconds_per_iter_after'], 2)
    print('train', json.dumps(out), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=int, default=3, help='timed training iterations')
    parser.add_argument('--out', default=osp.join(REPO_ROOT, 'benchmarks', 'results',
                                                  'rotated_assign.json'))
    args = parser.parse_args()
    torch.set_num_threads(1)
    from mmengine.registry import init_default_scope
    import mmrs.datasets  # noqa: F401
    import mmrs.models  # noqa: F401
    init_default_scope('mmrs')
    with tempfile.TemporaryDirectory() as tmp:
        data_root = split_scenes(tmp)
        result = dict(
            config=osp.relpath(CONFIG, REPO_ROOT), scenes=list(SCENES), patch=512, gap=100,
            threads=1, before=BEFORE['type'], after=AFTER['type'],
            assigner=bench_assigner(data_root), train_iteration=bench_train(data_root, args.iters),
            machine=dict(python=platform.python_version(), torch=torch.__version__,
                         cpus=os.cpu_count(), processor=platform.processor()))
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out, 'w', encoding='utf-8') as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == '__main__':
    main()
