"""Merge detections on DOTA patches back into whole scenes, with class-wise rotated NMS.

Patches are named ``<id>__<rate>__<x>___<y>`` (:mod:`mmrs.datasets.dota_split`); a detection of
a patch maps to the scene as ``(coord + offset) / rate`` (the devkit's ``ResultMerge``;
mmrotate 1.x's ``DOTAMetric.merge_results`` adds the offset but does not divide by the rate,
so it is only right for rate 1). Then, per scene and per class, NMS removes a detection whose
IoU with a higher-scoring one is **greater** than ``iou_thr``:

- ``nms='poly'``: the devkit's polygon NMS (``ResultMerge_multi_process.py``,
  ``py_cpu_nms_poly_fast``, ``nms_thresh = 0.1``): exact IoU of the quadrilaterals (shapely;
  the devkit's ``polyiou`` C++ extension), detections in ``argsort(scores)[::-1]`` order.
- ``nms='rotated'``: mmcv's ``nms_rotated`` on le90 rotated boxes (mmrotate 1.x, ``iou_thr
  0.1``). mmcv's CPU kernel ignores ``labels`` (it suppresses across classes), so
  :func:`classwise_nms_rotated` calls it once per class.

Official Task1 files (``Task1_<class>.txt``: ``<image> <score> x1 y1 ... x4 y4`` per line) are
read and written by :func:`read_task1` / :func:`write_task1`; :func:`merge_task1` turns a folder
of patch-level files into scene-level ones (``tools/data/dota/merge.py``).
"""
import os
import os.path as osp
import re
from collections.abc import Sequence

import numpy as np

from .dota import parse_patch_name

#: IoU above which a lower-scoring detection of the same class is removed (devkit, mmrotate).
IOU_THR = 0.1
NMS_METHODS = ('poly', 'rotated')
TASK1_FILE = re.compile(r'^Task1_(?P<cls>.+)\.txt$')


# ------------------------------------------------------------------------------ geometry
def patch_to_scene(boxes: np.ndarray, x: float, y: float, rate: float = 1.0) -> np.ndarray:
    """Boxes of a patch at ``(x, y)`` of a scene resized by ``rate`` -> scene coordinates.

    ``boxes`` are quadrilaterals ``(N, 8)`` or rotated boxes ``(N, 5)`` ``(cx, cy, w, h, a)``
    (the angle does not change under a uniform scale).
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] not in (5, 8):
        raise ValueError(f'boxes must be (N, 8) quadrilaterals or (N, 5) rotated boxes, got '
                         f'shape {boxes.shape}')
    out = boxes.copy()
    if boxes.shape[1] == 8:
        out[:, 0::2] = (boxes[:, 0::2] + x) / rate
        out[:, 1::2] = (boxes[:, 1::2] + y) / rate
    else:
        out[:, 0] = (boxes[:, 0] + x) / rate
        out[:, 1] = (boxes[:, 1] + y) / rate
        out[:, 2:4] = boxes[:, 2:4] / rate
    return out


def poly_nms(polys: np.ndarray, scores: np.ndarray, iou_thr: float = IOU_THR) -> np.ndarray:
    """The devkit's polygon NMS of one class: indices kept, highest score first."""
    import shapely

    polys = np.asarray(polys, dtype=np.float64).reshape(-1, 8)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    geoms = shapely.polygons(polys.reshape(-1, 4, 2))
    geoms = np.where(shapely.is_valid(geoms), geoms, shapely.make_valid(geoms))
    areas = shapely.area(geoms)
    order = np.argsort(scores, kind='quicksort')[::-1]
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        inter = shapely.area(shapely.intersection(geoms[i], geoms[rest]))
        union = areas[i] + areas[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[iou <= iou_thr]
    return np.asarray(keep, dtype=np.int64)


def classwise_nms_rotated(rboxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                          iou_thr: float = IOU_THR) -> np.ndarray:
    """mmcv ``nms_rotated`` per class; returns kept indices (by descending score).

    One call per class rather than mmcv's ``labels=`` argument, which its CPU kernel ignores.
    """
    import torch
    from mmcv.ops import nms_rotated

    rboxes = torch.as_tensor(np.asarray(rboxes, dtype=np.float32).reshape(-1, 5))
    scores_t = torch.as_tensor(np.asarray(scores, dtype=np.float32).reshape(-1))
    labels = np.asarray(labels).reshape(-1)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        _, k = nms_rotated(rboxes[idx], scores_t[idx], float(iou_thr))
        keep.append(idx[k.numpy()])
    if not keep:
        return np.zeros(0, dtype=np.int64)
    keep = np.concatenate(keep)
    return keep[np.argsort(-np.asarray(scores, dtype=np.float64)[keep], kind='stable')]


def classwise_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                  iou_thr: float = IOU_THR, nms: str = 'poly') -> np.ndarray:
    """Class-wise NMS of quadrilaterals (``nms='poly'`` or ``'rotated'``) or rotated boxes."""
    if nms not in NMS_METHODS:
        raise ValueError(f'nms must be one of {NMS_METHODS}, got {nms!r}')
    boxes = np.asarray(boxes, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    if boxes.shape[-1] == 5:
        if nms == 'poly':
            raise ValueError("nms='poly' needs quadrilaterals (N, 8), got rotated boxes")
        return classwise_nms_rotated(boxes, scores, labels, iou_thr)
    if nms == 'rotated':
        from .dota import quads_to_le90
        return classwise_nms_rotated(quads_to_le90(boxes), scores, labels, iou_thr)
    keep = [np.flatnonzero(labels == c)[poly_nms(boxes[labels == c], scores[labels == c],
                                                 iou_thr)] for c in np.unique(labels)]
    if not keep:
        return np.zeros(0, dtype=np.int64)
    keep = np.concatenate(keep)
    return keep[np.argsort(-np.asarray(scores, dtype=np.float64)[keep], kind='stable')]


def _patch_of(name: str) -> dict:
    patch = parse_patch_name(name)
    if patch is None:
        raise ValueError(f'{name!r} is not a DOTA patch name <id>__<rate>__<x>___<y>')
    return patch


def merge_patch_results(results: Sequence[dict], iou_thr: float = IOU_THR,
                        nms: str = 'rotated') -> dict[str, dict]:
    """Detections of patches -> detections of scenes (class-wise NMS per scene).

    Args:
        results: ``dict(img_id=<patch name>, bboxes=(N, 5 | 8), scores=(N,), labels=(N,))``
            per patch (numpy arrays or tensors); rotated boxes are le90 ``(cx, cy, w, h, a)``.
        iou_thr: NMS IoU threshold.
        nms: ``'rotated'`` (mmcv ``nms_rotated``) or ``'poly'`` (quadrilaterals only).

    Returns:
        ``{scene id: dict(bboxes, scores, labels)}``, highest scores first.
    """
    groups: dict[str, list] = {}
    for res in results:
        patch = _patch_of(str(res['img_id']))
        boxes = np.asarray(res['bboxes'], dtype=np.float64)
        boxes = boxes.reshape(-1, boxes.shape[-1] if boxes.ndim > 1 else 8)
        groups.setdefault(patch['ori_id'], []).append(
            (patch_to_scene(boxes, patch['x'], patch['y'], patch['rate']),
             np.asarray(res['scores'], dtype=np.float64).reshape(-1),
             np.asarray(res['labels'], dtype=np.int64).reshape(-1)))
    merged = {}
    for scene, parts in groups.items():
        boxes = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        labels = np.concatenate([p[2] for p in parts])
        keep = classwise_nms(boxes, scores, labels, iou_thr, nms)
        merged[scene] = dict(bboxes=boxes[keep], scores=scores[keep], labels=labels[keep])
    return merged


# ---------------------------------------------------------------------------- Task1 files
def read_task1(det_dir: str) -> dict[str, tuple[list[str], np.ndarray, np.ndarray]]:
    """``{class: (image names, scores (N,), polygons (N, 8))}`` of ``det_dir/Task1_*.txt``.

    Raises:
        FileNotFoundError: No folder, or no ``Task1_<class>.txt`` in it.
        ValueError: A line that is not ``<image> <score> x1 y1 ... x4 y4`` (names file and line).
    """
    if not osp.isdir(det_dir):
        raise FileNotFoundError(f'detection folder not found: {det_dir!r}')
    files = sorted(n for n in os.listdir(det_dir) if TASK1_FILE.match(n))
    if not files:
        raise FileNotFoundError(f'no Task1_<class>.txt files in {det_dir!r}')
    out = {}
    for fname in files:
        path = osp.join(det_dir, fname)
        names, values = [], []
        with open(path, encoding='utf-8') as f:
            for lineno, line in enumerate(f, 1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != 10:
                    raise ValueError(f'{path!r} line {lineno}: expected "<image> <score> x1 y1 ... '
                                     f'x4 y4" (10 fields), got {len(fields)}: {line.strip()!r}')
                try:
                    vals = [float(v) for v in fields[1:]]
                except ValueError:
                    raise ValueError(f'{path!r} line {lineno}: score and coordinates must be '
                                     f'numbers: {line.strip()!r}') from None
                names.append(fields[0])
                values.append(vals)
        arr = np.asarray(values, dtype=np.float64).reshape(-1, 9)
        out[TASK1_FILE.match(fname)['cls']] = (names, arr[:, 0], arr[:, 1:])
    return out


def write_task1(out_dir: str, dets: dict[str, tuple[Sequence[str], np.ndarray, np.ndarray]],
                classes: Sequence[str] | None = None) -> list[str]:
    """Write ``Task1_<class>.txt`` files; ``classes`` adds empty files for classes without dets."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for cls in list(dict.fromkeys(list(classes or []) + list(dets))):
        names, scores, polys = dets.get(cls, ([], np.zeros(0), np.zeros((0, 8))))
        path = osp.join(out_dir, f'Task1_{cls}.txt')
        with open(path, 'w', encoding='utf-8') as f:
            for name, score, poly in zip(names, scores, polys):
                f.write(f'{name} {float(score)!r} ' + ' '.join(repr(float(v)) for v in poly) + '\n')
        paths.append(path)
    return paths


def merge_task1(det_dir: str, out_dir: str, iou_thr: float = IOU_THR, nms: str = 'poly',
                classes: Sequence[str] | None = None) -> list[str]:
    """Patch-level Task1 files -> scene-level Task1 files (one class a file, so NMS is
    class-wise); scenes in first-seen order, detections by descending score."""
    merged = {}
    for cls, (names, scores, polys) in read_task1(det_dir).items():
        order, scene_of = {}, []
        for k, name in enumerate(names):
            patch = _patch_of(name)
            scene_of.append(patch['ori_id'])
            polys[k] = patch_to_scene(polys[k:k + 1], patch['x'], patch['y'], patch['rate'])[0]
            order.setdefault(patch['ori_id'], []).append(k)
        out_names, out_scores, out_polys = [], [], []
        for scene, idx in order.items():
            idx = np.asarray(idx)
            keep = idx[classwise_nms(polys[idx], scores[idx], np.zeros(len(idx)), iou_thr, nms)]
            out_names += [scene] * len(keep)
            out_scores.append(scores[keep])
            out_polys.append(polys[keep])
        merged[cls] = (out_names, np.concatenate(out_scores) if out_scores else np.zeros(0),
                       np.concatenate(out_polys) if out_polys else np.zeros((0, 8)))
    return write_task1(out_dir, merged, classes)
