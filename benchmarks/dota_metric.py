"""DOTA Task1 AP: mmrs's vectorised devkit mode vs a per-detection Python loop.

    nice -n 5 python benchmarks/dota_metric.py [--per-object 4] [--false-positives 100] \
        [--repeats 3]

Detections are the real objects of the 7 ``dota_samples`` label files (``../shared/data``),
each found 0 .. ``--per-object`` times as a jittered rotated rectangle, plus
``--false-positives`` random boxes per image, scores on a 1/100 grid (ties). Both sides get the
same in-memory arrays and compute every DOTA-v1.0 class's AP at IoU 0.5, VOC07 and area:

- ``loop``: the devkit's algorithm written plainly: detections sorted by
  ``np.argsort(-score)``, then for each one the image's objects pre-filtered by horizontal-box
  overlap (numpy, as the devkit), one shapely polygon IoU per candidate, argmax, greedy
  TP/FP with difficult objects ignored, and the devkit's ``voc_ap``;
- ``mmrs``: :func:`mmrs.evaluation.dota_eval.devkit_class_ap` (pairs built with numpy, one
  vectorised shapely call per class, first-match TPs without a Python loop).

Writes ``benchmarks/results/dota_metric.json``: best-of-``--repeats`` seconds of each, the
speed-up, and whether every AP is identical (``==``, not close). Timing lives here rather than
in the test suite, where shared CPUs make wall-clock assertions flaky.
"""
import argparse
import json
import os
import os.path as osp
import platform
import time

import cv2
import numpy as np
from shapely.geometry import Polygon

from mmrs.datasets.dota import DOTA_CLASSES, read_dota_label
from mmrs.evaluation.dota_eval import devkit_class_ap, devkit_voc_ap

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
LABELS = osp.join(os.environ.get('MMRS_SHARED_DATA', osp.join(REPO_ROOT, '..', 'shared', 'data')),
                  'dota_samples', 'example', 'labelTxt')


def make_scene(per_object: int, false_positives: int, seed: int = 0) -> dict:
    """Objects and perturbed detections, flat arrays with image indices."""
    rng = np.random.default_rng(seed)
    names = sorted(n[:-4] for n in os.listdir(LABELS) if n.endswith('.txt'))
    gt_img, gt_quads, gt_labels, gt_diff = [], [], [], []
    det_img, det_quads, det_labels = [], [], []
    for i, name in enumerate(names):
        lab = read_dota_label(osp.join(LABELS, f'{name}.txt'))
        gt_img += [i] * len(lab['labels'])
        gt_quads.append(lab['polys'])
        gt_labels.append(lab['labels'])
        gt_diff.append(lab['difficult'] > 0)
        extent = lab['polys'].max(0) if len(lab['polys']) else np.full(8, 1000.)
        for poly, label in zip(lab['polys'], lab['labels']):
            (cx, cy), (w, h), a = cv2.minAreaRect(poly.reshape(4, 2).astype(np.float32))
            for _ in range(rng.integers(0, per_object + 1)):
                k = rng.normal(0, 0.1, 5)
                box = ((cx + k[0] * w, cy + k[1] * h), (w * (1 + k[2]), h * (1 + k[3])),
                       a + 20 * k[4])
                det_quads.append(cv2.boxPoints(box).reshape(-1))
                det_img.append(i)
                det_labels.append(label)
        for _ in range(false_positives):
            x, y = rng.uniform(0, extent[0::2].max()), rng.uniform(0, extent[1::2].max())
            box = ((x, y), tuple(rng.uniform(8, 60, 2)), rng.uniform(-90, 90))
            det_quads.append(cv2.boxPoints(box).reshape(-1))
            det_img.append(i)
            det_labels.append(rng.integers(len(DOTA_CLASSES['v1.0'])))
    return dict(num_images=len(names), gt_img=np.array(gt_img), gt_quads=np.concatenate(gt_quads),
                gt_labels=np.concatenate(gt_labels), gt_diff=np.concatenate(gt_diff),
                det_img=np.array(det_img), det_quads=np.array(det_quads, np.float64),
                det_labels=np.array(det_labels),
                det_scores=rng.integers(1, 100, len(det_img)) / 100)


def loop_class_ap(det_img, scores, det_quads, gt_img, gt_quads, difficult, iou_thr, use_07):
    """The devkit's per-detection algorithm, written plainly (the baseline)."""
    order = np.argsort(-scores)
    per_image = {}
    for j, i in enumerate(gt_img):
        per_image.setdefault(int(i), []).append(j)
    taken = np.zeros(len(gt_img), dtype=bool)
    tp = np.zeros(len(order))
    fp = np.zeros(len(order))
    for rank, d in enumerate(order):
        bb = det_quads[d]
        idx = np.array(per_image.get(int(det_img[d]), []), dtype=np.int64)
        best, best_j = -np.inf, -1
        if len(idx):
            g = gt_quads[idx]
            iw = (np.minimum(g[:, 0::2].max(1), bb[0::2].max())
                  - np.maximum(g[:, 0::2].min(1), bb[0::2].min()) + 1.)
            ih = (np.minimum(g[:, 1::2].max(1), bb[1::2].max())
                  - np.maximum(g[:, 1::2].min(1), bb[1::2].min()) + 1.)
            cand = idx[(iw > 0) & (ih > 0)]
            det_poly = Polygon(bb.reshape(4, 2))
            ious = []
            for j in cand:
                gt_poly = Polygon(gt_quads[j].reshape(4, 2))
                inter = det_poly.intersection(gt_poly).area
                ious.append(inter / (det_poly.area + gt_poly.area - inter))
            if ious:
                best, best_j = np.max(ious), cand[int(np.argmax(ious))]
        if best > iou_thr:
            if not difficult[best_j]:
                if not taken[best_j]:
                    tp[rank], taken[best_j] = 1., True
                else:
                    fp[rank] = 1.
        else:
            fp[rank] = 1.
    npos = int((~difficult).sum())
    if npos == 0:
        return 0.0
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    return devkit_voc_ap(tp / float(npos), tp / np.maximum(tp + fp, np.finfo(np.float64).eps),
                         use_07)


def evaluate(fn, scene: dict, use_07: bool) -> list[float]:
    aps = []
    for c in range(len(DOTA_CLASSES['v1.0'])):
        d, g = scene['det_labels'] == c, scene['gt_labels'] == c
        args = (scene['det_img'][d], scene['det_scores'][d], scene['det_quads'][d],
                scene['gt_img'][g], scene['gt_quads'][g], scene['gt_diff'][g], 0.5, use_07)
        out = fn(*args)
        aps.append(out if isinstance(out, float) else out.ap)
    return aps


def best_time(fn, repeats: int) -> tuple[float, list]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--per-object', type=int, default=4)
    parser.add_argument('--false-positives', type=int, default=100)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--out', default=osp.join(REPO_ROOT, 'benchmarks', 'results',
                                                  'dota_metric.json'))
    args = parser.parse_args()
    scene = make_scene(args.per_object, args.false_positives)
    rows = []
    for metric, use_07 in (('voc07', True), ('area', False)):
        t_mmrs, ap_mmrs = best_time(lambda: evaluate(devkit_class_ap, scene, use_07),
                                    args.repeats)
        t_loop, ap_loop = best_time(lambda: evaluate(loop_class_ap, scene, use_07),
                                    args.repeats)
        rows.append(dict(metric=metric, mmrs_seconds=round(t_mmrs, 4),
                         loop_seconds=round(t_loop, 4), speedup=round(t_loop / t_mmrs, 1),
                         identical=ap_mmrs == ap_loop,
                         max_abs_diff=float(np.max(np.abs(np.subtract(ap_mmrs, ap_loop)))),
                         mAP=sum(ap_mmrs) / len(ap_mmrs)))
        print(rows[-1])
    result = dict(num_images=scene['num_images'], num_detections=len(scene['det_img']),
                  num_objects=len(scene['gt_img']), iou_thr=0.5, repeats=args.repeats,
                  results=rows, machine=platform.machine(), python=platform.python_version(),
                  note='best of repeats; shared 2-core machine, run under nice -n 5')
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=2)
        f.write('\n')


if __name__ == '__main__':
    main()
