"""DOTA Task1 (oriented boxes) average precision, as the official devkit and as mmrotate 1.x.

Two evaluation *modes* compute per-class AP and mAP from the same inputs. They differ in
the points below (``docs/dota_evaluation.md`` has them as a table), which is why two
published numbers for one model can disagree.

``mode='devkit'``: ``dota_evaluation_task1.py`` of CAPTAIN-WHU/DOTA_devkit.

- IoU: polygon IoU of the quadrilaterals in float64 (vectorised shapely 2 = the devkit's
  ``polyiou``), only for objects whose horizontal box overlaps the detection's under the
  devkit's ``+1`` pixel convention.
- A match needs IoU ``>`` the threshold (strict).
- Difficult objects take part in the argmax; a detection matched to one is neither TP nor
  FP; they are not counted in ``npos``.
- Greedy order: one ``np.argsort(-score)`` over the class's detections in input (file)
  order.
- ``rec = tp / npos``, ``prec = tp / max(tp + fp, eps64)``.
- VOC07: thresholds ``np.arange(0., 1.1, 0.1)``, ``ap += p / 11``; area: VOC2010+ area
  under the precision envelope; both float64.
- mAP: mean over the fixed class list, a class without (non-difficult) ground truth
  counting 0.

``mode='mmrotate'``: ``mmrotate.evaluation.eval_rbbox_map`` (behind its ``DOTAMetric``).

- IoU: mmcv ``box_iou_rotated`` on ``(cx, cy, w, h, a)`` boxes (or ``box_iou_quadri`` on
  quadrilaterals), float32, all objects of the image.
- A match needs IoU ``>=`` the threshold.
- Ignored objects are stacked after the others and take part in the argmax (matched:
  neither TP nor FP), except in an image without any non-ignored object of any class,
  whose ignored objects ``get_cls_results`` drops (detections there are FPs). mmrotate's
  own ``DOTADataset`` (``diff_thr=100``) never flags difficult objects, so its pipeline
  scores them as ordinary objects.
- Greedy order: ``np.argsort(-score)`` per image for the matching, then one global
  ``np.argsort(-score)`` (float32 scores) over the images' detections concatenated in image
  order for the PR curve.
- ``rec = tp / max(npos, eps32)`` (float32 cumulative tp).
- VOC07: thresholds ``np.arange(0, 1.001, 0.1)``, ``ap += p`` then ``/ 11``, float32; area:
  the same envelope arithmetic, stored as float32.
- mAP: float32 mean over the classes with at least one (non-ignored) object.

Score ties: both use ``np.argsort(-scores)`` with numpy's default ``kind='quicksort'`` (an
introsort, and a SIMD sort on CPUs that have one); it is not stable, so equal scores come
out in an order that depends on the array, not on the input order. We call exactly the same
function on exactly the same array (the devkit's: the class's scores in file order) so the
order, and hence the AP, is the devkit's; a stable sort would change APs when tied
detections differ in TP/FP status.

Where the devkit script itself fails (numpy >= 1.24 removed ``np.bool``; an empty
``Task1_<class>.txt`` raises ``IndexError``; a class without ground truth divides by zero and
yields NaN for the area AP), this module returns the value the issue asks for: AP 0.

Everything is vectorised over detections: the candidate (detection, object) pairs come from
an STR tree of horizontal boxes, pairs whose IoU cannot reach the threshold are skipped by
an area bound, the rest get their polygon IoU from one shapely 2 call, and the greedy
assignment reduces to "the first detection in score order whose best object is a given
object is the TP", because both algorithms choose the best object by IoU alone (an object
already matched still wins the argmax and turns the detection into a FP).
"""
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely

EVAL_MODES = ('devkit', 'mmrotate')
AP_METRICS = ('voc07', 'area')


@dataclass
class ClassAP:
    """AP of one class and the curve it comes from.

    Attributes:
        ap: average precision (0 when the class has no ground truth in devkit mode).
        num_gts: objects counted in the recall (non-difficult / non-ignored).
        num_dets: detections of the class.
        recall: cumulative recall in score order.
        precision: cumulative precision in score order.
    """
    ap: float
    num_gts: int
    num_dets: int
    recall: np.ndarray = field(repr=False)
    precision: np.ndarray = field(repr=False)


def check_options(mode: str, metric: str) -> None:
    """Raise ``ValueError`` for an unknown evaluation mode or AP metric."""
    if mode not in EVAL_MODES:
        raise ValueError(f'mode must be one of {EVAL_MODES}, got {mode!r}')
    if metric not in AP_METRICS:
        raise ValueError(f'metric must be one of {AP_METRICS}, got {metric!r}')


def devkit_voc_ap(rec: np.ndarray, prec: np.ndarray, use_07_metric: bool) -> float:
    """AP of a PR curve as the devkit's ``voc_ap`` (float64, its exact threshold values).

    The 11 thresholds are ``np.arange(0., 1.1, 0.1)``, so e.g. the fourth is
    ``0.30000000000000004`` and a recall of exactly ``3/10`` does not reach it: kept on
    purpose, it is what the devkit reports.
    """
    rec = np.asarray(rec, dtype=np.float64)
    prec = np.asarray(prec, dtype=np.float64)
    if use_07_metric:
        ap = 0.
        for t in np.arange(0., 1.1, 0.1):
            reached = rec >= t
            p = np.max(prec[reached]) if reached.any() else 0
            ap = ap + p / 11.
        return float(ap)
    mrec = np.concatenate(([0.], rec, [1.]))
    mpre = np.concatenate(([0.], prec, [0.]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # the precision envelope
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def mmdet_average_precision(rec: np.ndarray, prec: np.ndarray, use_07_metric: bool) -> float:
    """AP of a PR curve as ``mmdet.evaluation.functional.average_precision`` (float32 sum)."""
    ap = np.zeros(1, dtype=np.float32)
    if use_07_metric:
        for thr in np.arange(0, 1 + 1e-3, 0.1):
            precs = prec[rec >= thr]
            ap[0] += precs.max() if precs.size > 0 else 0
        ap /= 11
        return float(ap[0])
    mrec = np.hstack((np.zeros(1, rec.dtype), rec, np.ones(1, rec.dtype)))
    mpre = np.hstack((np.zeros(1, prec.dtype), prec, np.zeros(1, prec.dtype)))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    ind = np.where(mrec[1:] != mrec[:-1])[0]
    ap[0] = np.sum((mrec[ind + 1] - mrec[ind]) * mpre[ind + 1])
    return float(ap[0])


class _Polygons:
    """Quadrilaterals as shapely polygons, built once, with their areas and validity."""

    def __init__(self, quads: np.ndarray) -> None:
        self.quads = np.asarray(quads, np.float64).reshape(-1, 8)
        self.geoms = shapely.polygons(self.quads.reshape(-1, 4, 2))
        self.area = shapely.area(self.geoms)
        self.simple = shapely.is_valid(self.geoms)


def _pair_iou(a: _Polygons, ia: np.ndarray, b: _Polygons, ib: np.ndarray) -> np.ndarray:
    """IoU of the polygon pairs ``(a[ia[k]], b[ib[k]])``; see :func:`polygon_iou_pairs`."""
    iou = np.zeros(len(ia), dtype=np.float64)
    if len(ia) == 0:
        return iou
    simple = a.simple[ia] & b.simple[ib]
    sa, sb = ia[simple], ib[simple]
    inter = shapely.area(shapely.intersection(a.geoms[sa], b.geoms[sb]))
    with np.errstate(invalid='ignore', divide='ignore'):
        iou[simple] = inter / (a.area[sa] + b.area[sb] - inter)
    if not simple.all():
        iou[~simple] = _winding_iou(a.quads[ia[~simple]], b.quads[ib[~simple]])
    return iou


def polygon_iou_pairs(quads1: np.ndarray, quads2: np.ndarray) -> np.ndarray:
    """IoU of quadrilaterals ``quads1[k]`` and ``quads2[k]`` (both ``(K, 8)``), float64.

    This is the devkit's ``polyiou.iou_poly``: for simple polygons the plain area of the
    intersection over the union (vectorised shapely); orientation does not matter. A
    self-intersecting ("bow-tie") quadrilateral, which GEOS rejects, is scored as polyiou's
    signed triangle sums score it (:func:`_winding_iou`). Two degenerate polygons give NaN,
    as in the devkit (0 / 0).
    """
    a, b = _Polygons(quads1), _Polygons(quads2)
    if len(a.quads) != len(b.quads):
        raise ValueError(f'{len(a.quads)} vs {len(b.quads)} quadrilaterals')
    idx = np.arange(len(a.quads))
    return _pair_iou(a, idx, b, idx)


def _winding_iou(quads1: np.ndarray, quads2: np.ndarray) -> np.ndarray:
    """IoU of arbitrary quadrilaterals under polyiou's definition.

    polyiou orients both polygons by the sign of their shoelace area and sums signed
    triangle intersections, i.e. it integrates the product of the two winding numbers. We
    compute the same integral from the fan triangles ``(p0, p1, p2)``, ``(p0, p2, p3)`` of
    each quadrilateral (its winding number is ``w = sum_t sign_t [T_t]``), so
    ``int w1 w2 = sum_{t,u} sign_t sign_u |T_t & U_u|``; the union is ``|A1| + |A2| - inter``
    as in polyiou.
    """
    def fan(quads: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pts = quads.reshape(-1, 4, 2)
        tris = np.stack([pts[:, [0, 1, 2]], pts[:, [0, 2, 3]]], axis=1)  # (K, 2, 3, 2)
        e1, e2 = tris[..., 1, :] - tris[..., 0, :], tris[..., 2, :] - tris[..., 0, :]
        signed = 0.5 * (e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0])  # (K, 2)
        geoms = shapely.polygons(tris)
        geoms[signed == 0] = shapely.Polygon()  # a flat triangle adds nothing
        return geoms, np.sign(signed), signed.sum(axis=1)

    g1, s1, a1 = fan(quads1)
    g2, s2, a2 = fan(quads2)
    inter = np.zeros(len(quads1))
    for t in range(2):
        for u in range(2):
            inter += s1[:, t] * s2[:, u] * shapely.area(shapely.intersection(g1[:, t], g2[:, u]))
    inter *= np.where(a1 < 0, -1., 1.) * np.where(a2 < 0, -1., 1.)  # polyiou: reverse if < 0
    with np.errstate(invalid='ignore', divide='ignore'):
        return inter / (np.abs(a1) + np.abs(a2) - inter)


def _hbb(quads: np.ndarray) -> np.ndarray:
    """``(K, 4)`` horizontal boxes ``xmin, ymin, xmax, ymax`` of ``(K, 8)`` quadrilaterals."""
    xs, ys = quads[:, 0::2], quads[:, 1::2]
    return np.stack([xs.min(1), ys.min(1), xs.max(1), ys.max(1)], axis=1)


def _devkit_hbb_candidates(hbb1: np.ndarray, hbb2: np.ndarray) -> np.ndarray:
    """The devkit's pre-filter, pairwise: its horizontal-box overlap (``+1`` pixel
    convention) is ``> 0``, i.e. both clipped ``ixmax - ixmin + 1`` and ``iymax - iymin + 1``
    are positive (the union is at least 1 there)."""
    iw = np.minimum(hbb1[:, 2], hbb2[:, 2]) - np.maximum(hbb1[:, 0], hbb2[:, 0]) + 1.
    ih = np.minimum(hbb1[:, 3], hbb2[:, 3]) - np.maximum(hbb1[:, 1], hbb2[:, 1]) + 1.
    return (iw > 0) & (ih > 0)


def _iou_upper_bound(det: _Polygons, det_hbb: np.ndarray, gt: _Polygons, gt_hbb: np.ndarray,
                     pd: np.ndarray, pg: np.ndarray) -> np.ndarray:
    """An upper bound of the IoU of simple polygon pairs, from areas and horizontal boxes:
    the intersection is at most ``min(hbb overlap, area1, area2)`` and ``x / (a1 + a2 - x)``
    grows with ``x``. NaN where both polygons are flat."""
    hb1, hb2 = det_hbb[pd], gt_hbb[pg]
    hw = np.maximum(np.minimum(hb1[:, 2], hb2[:, 2]) - np.maximum(hb1[:, 0], hb2[:, 0]), 0.)
    hh = np.maximum(np.minimum(hb1[:, 3], hb2[:, 3]) - np.maximum(hb1[:, 1], hb2[:, 1]), 0.)
    a1, a2 = det.area[pd], gt.area[pg]
    x = np.minimum(hw * hh, np.minimum(a1, a2))
    with np.errstate(invalid='ignore', divide='ignore'):
        return x / (a1 + a2 - x)


def _candidate_pairs(det_img: np.ndarray, det_hbb: np.ndarray, gt_img: np.ndarray,
                     gt_hbb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(det index, object index)`` of the pairs the devkit intersects: same image and
    :func:`_devkit_hbb_candidates`.

    An STR tree over the objects' horizontal boxes (images laid side by side along x) finds
    a superset (detection boxes grown by 1 px, so the ``+1`` convention cannot miss a pair)
    without forming every (detection, object) pair of an image; the exact test follows.
    """
    lo = min(det_hbb[:, 0].min(), gt_hbb[:, 0].min())
    stride = max(det_hbb[:, 2].max(), gt_hbb[:, 2].max()) - lo + 16.
    gx = (gt_img * stride)[:, None]
    dx = (det_img * stride)[:, None]
    tree = shapely.STRtree(shapely.box(gt_hbb[:, 0:1] + gx, gt_hbb[:, 1:2], gt_hbb[:, 2:3] + gx,
                                       gt_hbb[:, 3:4]).reshape(-1))
    pd, pg = tree.query(shapely.box(det_hbb[:, 0:1] + dx - 1, det_hbb[:, 1:2] - 1,
                                    det_hbb[:, 2:3] + dx + 1, det_hbb[:, 3:4] + 1).reshape(-1))
    keep = (det_img[pd] == gt_img[pg]) & _devkit_hbb_candidates(det_hbb[pd], gt_hbb[pg])
    return pd[keep].astype(np.int64), pg[keep].astype(np.int64)


def _best_gt_devkit(det_img: np.ndarray, det_quads: np.ndarray, gt_img: np.ndarray,
                    gt_quads: np.ndarray, iou_thr: float) -> tuple[np.ndarray, np.ndarray]:
    """``(ovmax, jmax)`` of every detection as the devkit: best polygon IoU among the objects
    of its image whose horizontal boxes overlap it (``-inf``, ``-1`` when none; NaN when a
    candidate IoU is NaN); ties go to the object listed first.

    Pairs of simple polygons whose IoU cannot reach ``iou_thr`` (upper bound below it by a
    1e-9 margin) are not intersected: they can be neither the best object of a detection
    that matches nor change a detection that does not. So ``jmax`` is the devkit's wherever
    ``ovmax > iou_thr``, and the outcome (match or not) is the devkit's everywhere.
    """
    nd = len(det_img)
    ovmax = np.full(nd, -np.inf)
    jmax = np.full(nd, -1, dtype=np.int64)
    if nd == 0 or len(gt_img) == 0:
        return ovmax, jmax
    det_hbb, gt_hbb = _hbb(det_quads), _hbb(gt_quads)
    det_polys, gt_polys = _Polygons(det_quads), _Polygons(gt_quads)
    pair_det, pair_gt = _candidate_pairs(det_img, det_hbb, gt_img, gt_hbb)
    bound = _iou_upper_bound(det_polys, det_hbb, gt_polys, gt_hbb, pair_det, pair_gt)
    hopeless = det_polys.simple[pair_det] & gt_polys.simple[pair_gt] & (bound < iou_thr - 1e-9)
    pair_det, pair_gt = pair_det[~hopeless], pair_gt[~hopeless]
    ious = _pair_iou(det_polys, pair_det, gt_polys, pair_gt)
    if len(ious):
        # per detection: highest IoU first, then the object listed first (np.argmax); the
        # objects of an image are in input order, so the lower index is the one listed first
        nan = np.isnan(ious)
        key = np.where(nan, -np.inf, -ious)  # a NaN wins, as np.max/np.argmax return it
        idx = np.lexsort((pair_gt, key, pair_det))
        first = idx[np.r_[True, pair_det[idx][1:] != pair_det[idx][:-1]]]
        ovmax[pair_det[first]] = np.where(nan[first], np.nan, ious[first])
        jmax[pair_det[first]] = pair_gt[first]
    return ovmax, jmax


def _first_match_tp(matched: np.ndarray, jmax: np.ndarray) -> np.ndarray:
    """``tp[d]`` for detections in greedy order: the first one matched to each object."""
    tp = np.zeros(len(jmax), dtype=bool)
    rows = np.flatnonzero(matched)
    _, first = np.unique(jmax[rows], return_index=True)
    tp[rows[first]] = True
    return tp


def devkit_class_ap(det_img: np.ndarray, det_scores: np.ndarray, det_quads: np.ndarray,
                    gt_img: np.ndarray, gt_quads: np.ndarray, gt_difficult: np.ndarray,
                    iou_thr: float = 0.5, use_07_metric: bool = True) -> ClassAP:
    """AP of one class exactly as the devkit's ``voc_eval``.

    Args:
        det_img: ``(N,)`` image index of every detection, in the order of the devkit's
            ``Task1_<class>.txt`` file (it decides the order of tied scores).
        det_scores: ``(N,)`` scores, used at full precision (float64).
        det_quads: ``(N, 8)`` quadrilaterals ``x1 y1 ... x4 y4``.
        gt_img: ``(M,)`` image index of every object of the class.
        gt_quads: ``(M, 8)`` the original annotated quadrilaterals.
        gt_difficult: ``(M,)`` difficult flags.
        iou_thr: a match needs IoU strictly greater than this.
        use_07_metric: VOC07 11-point AP, else area under the PR envelope.
    """
    scores = np.asarray(det_scores, dtype=np.float64).reshape(-1)
    det_quads = np.asarray(det_quads, dtype=np.float64).reshape(-1, 8)
    gt_quads = np.asarray(gt_quads, dtype=np.float64).reshape(-1, 8)
    difficult = np.asarray(gt_difficult, dtype=bool).reshape(-1)
    npos = int((~difficult).sum())
    order = np.argsort(-scores)  # the devkit's call: default (quicksort) kind
    det_img = np.asarray(det_img, dtype=np.int64)[order]
    ovmax, jmax = _best_gt_devkit(det_img, det_quads[order], np.asarray(gt_img, np.int64),
                                  gt_quads, iou_thr)
    with np.errstate(invalid='ignore'):
        hit = ovmax > iou_thr
    on_difficult = hit & difficult[np.maximum(jmax, 0)] if len(difficult) else hit & False
    valid = hit & ~on_difficult
    tp = _first_match_tp(valid, jmax)
    fp = (valid & ~tp) | ~hit
    tp_cum = np.cumsum(tp.astype(np.float64))
    fp_cum = np.cumsum(fp.astype(np.float64))
    prec = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).eps)
    if npos == 0:  # the devkit divides by zero here (NaN); the issue asks for AP 0
        return ClassAP(0.0, 0, len(scores), np.zeros_like(tp_cum), prec)
    rec = tp_cum / float(npos)
    return ClassAP(devkit_voc_ap(rec, prec, use_07_metric), npos, len(scores), rec, prec)


def _iou_mmcv(dets: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """mmcv rotated (5 columns + score) or quadrilateral (8 + score) IoU, float32."""
    import torch
    from mmcv.ops import box_iou_quadri, box_iou_rotated
    fn = box_iou_rotated if gts.shape[1] == 5 else box_iou_quadri
    return fn(torch.from_numpy(dets).float(), torch.from_numpy(gts).float()).numpy()


def mmrotate_class_ap(det_img: np.ndarray, det_scores: np.ndarray, det_boxes: np.ndarray,
                      gt_img: np.ndarray, gt_boxes: np.ndarray, gt_ignore: np.ndarray,
                      num_images: int, iou_thr: float = 0.5, use_07_metric: bool = True,
                      image_has_gt: np.ndarray | None = None) -> ClassAP:
    """AP of one class exactly as mmrotate 1.x's ``eval_rbbox_map`` (no scale ranges).

    Boxes are rotated ``(cx, cy, w, h, a)`` (5 columns, mmcv ``box_iou_rotated``) or
    quadrilaterals (8 columns, ``box_iou_quadri``), the same kind for detections and
    objects. Images are taken in index order, the detections of an image in input order
    (mmrotate's per-image result arrays); ``gt_ignore`` marks its ``ignored_instances``.

    ``image_has_gt[i]`` says whether image ``i`` has a non-ignored object of *any* class:
    mmrotate's ``get_cls_results`` drops the ignored objects of the other images (so a
    detection on a difficult object there is a FP). ``None``: every image has one.
    """
    det_img = np.asarray(det_img, dtype=np.int64)
    gt_img = np.asarray(gt_img, dtype=np.int64)
    width = np.asarray(gt_boxes).shape[-1] if np.asarray(gt_boxes).size else det_boxes.shape[-1]
    # mmrotate's per-class arrays: np.hstack([bboxes, scores]) of float32 model outputs
    dets = np.hstack([np.asarray(det_boxes, np.float32).reshape(-1, width),
                      np.asarray(det_scores, np.float32).reshape(-1, 1)])
    gt_boxes = np.asarray(gt_boxes, np.float32).reshape(-1, width)
    gt_ignore = np.asarray(gt_ignore, dtype=bool).reshape(-1)
    det_order = np.argsort(det_img, kind='stable')
    gt_order = np.argsort(gt_img, kind='stable')
    det_bounds = np.searchsorted(det_img[det_order], np.arange(num_images + 1))
    gt_bounds = np.searchsorted(gt_img[gt_order], np.arange(num_images + 1))
    tps, fps, all_dets = [], [], []
    for i in range(num_images):
        d = dets[det_order[det_bounds[i]:det_bounds[i + 1]]]
        g = gt_order[gt_bounds[i]:gt_bounds[i + 1]]
        # mmrotate stacks the image's ignored objects after the others
        keep_ignored = image_has_gt is None or image_has_gt[i]
        g = np.concatenate([g[~gt_ignore[g]], g[gt_ignore[g]] if keep_ignored else g[:0]])
        tp = np.zeros(len(d), dtype=np.float32)
        fp = np.zeros(len(d), dtype=np.float32)
        if len(g) == 0:
            fp[:] = 1
        elif len(d):
            ious = _iou_mmcv(d, gt_boxes[g])
            best, arg = ious.max(axis=1), ious.argmax(axis=1)
            sort_inds = np.argsort(-d[:, -1])
            hit = best[sort_inds] >= iou_thr
            valid = hit & ~gt_ignore[g][arg[sort_inds]]
            first = _first_match_tp(valid, arg[sort_inds])
            tp[sort_inds[first]] = 1
            fp[sort_inds[(valid & ~first) | ~hit]] = 1
        tps.append(tp)
        fps.append(fp)
        all_dets.append(d)
    cls_dets = np.vstack(all_dets) if all_dets else np.zeros((0, width + 1), np.float32)
    sort_inds = np.argsort(-cls_dets[:, -1])
    tp = np.cumsum(np.hstack(tps or [np.zeros(0, np.float32)])[sort_inds])
    fp = np.cumsum(np.hstack(fps or [np.zeros(0, np.float32)])[sort_inds])
    num_gts = int((~gt_ignore).sum())
    eps = np.finfo(np.float32).eps
    rec = tp / np.maximum(np.array(num_gts), eps)
    prec = tp / np.maximum(tp + fp, eps)
    return ClassAP(mmdet_average_precision(rec, prec, use_07_metric), num_gts, len(cls_dets),
                   rec, prec)


@dataclass
class ClassData:
    """Detections and objects of one class over an evaluation set (flat, image-indexed).

    Boxes are ``(K, 8)`` quadrilaterals or, in mmrotate mode only, ``(K, 5)`` rotated boxes.
    """
    det_img: np.ndarray
    det_scores: np.ndarray
    det_boxes: np.ndarray
    gt_img: np.ndarray
    gt_boxes: np.ndarray
    gt_ignore: np.ndarray


def dota_map(per_class: Sequence[ClassData], classes: Sequence[str], num_images: int,
             iou_thr: float = 0.5, metric: str = 'voc07',
             mode: str = 'devkit') -> dict:
    """Per-class AP and mAP of DOTA Task1.

    Args:
        per_class: one :class:`ClassData` per entry of ``classes``.
        classes: class names (the fixed list the devkit mode averages over).
        num_images: number of images of the evaluation set.
        iou_thr: IoU threshold.
        metric: ``'voc07'`` (11-point) or ``'area'``.
        mode: ``'devkit'`` or ``'mmrotate'`` (see the module docstring).

    Returns:
        ``{'mAP': float, 'AP': {class: float}, 'num_gts': {...}, 'num_dets': {...}}``.
    """
    check_options(mode, metric)
    if len(per_class) != len(classes):
        raise ValueError(f'{len(per_class)} class data for {len(classes)} classes')
    use_07 = metric == 'voc07'
    has_gt = np.zeros(num_images, dtype=bool)
    for data in per_class:
        has_gt[np.asarray(data.gt_img, np.int64)[~np.asarray(data.gt_ignore, bool)]] = True
    results = []
    for data in per_class:
        if mode == 'devkit':
            if data.det_boxes.size and data.det_boxes.shape[-1] != 8 or (
                    data.gt_boxes.size and data.gt_boxes.shape[-1] != 8):
                raise ValueError('devkit mode needs quadrilaterals (8 columns)')
            results.append(devkit_class_ap(data.det_img, data.det_scores, data.det_boxes,
                                           data.gt_img, data.gt_boxes, data.gt_ignore,
                                           iou_thr, use_07))
        else:
            results.append(mmrotate_class_ap(data.det_img, data.det_scores, data.det_boxes,
                                             data.gt_img, data.gt_boxes, data.gt_ignore,
                                             num_images, iou_thr, use_07, has_gt))
    if mode == 'devkit':  # the devkit's running sum, then one division
        mean = sum(r.ap for r in results) / len(results) if results else 0.0
    else:  # mmrotate: float32 mean over the classes that have ground truth
        aps = [r.ap for r in results if r.num_gts > 0]
        mean = np.array(aps, dtype=np.float32).mean().item() if aps else 0.0
    return {'mAP': mean,
            'AP': {c: r.ap for c, r in zip(classes, results)},
            'num_gts': {c: r.num_gts for c, r in zip(classes, results)},
            'num_dets': {c: r.num_dets for c, r in zip(classes, results)}}


def read_task1_file(path: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Read an official Task1 submission file (``image score x1 y1 ... x4 y4`` a line).

    Blank lines are skipped; scores and coordinates are read at full precision.

    Returns:
        ``(image_ids, scores (N,) float64, quads (N, 8) float64)`` in file order.

    Raises:
        ValueError: A malformed line, naming the file and the 1-based line number.
    """
    image_ids, scores, quads = [], [], []
    with open(path, encoding='utf-8-sig') as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            where = f'{path!r} line {lineno}'
            if len(fields) != 10:
                raise ValueError(f'Task1 detections {where}: expected "image score x1 y1 x2 y2 '
                                 f'x3 y3 x4 y4" (10 fields), got {len(fields)}: {line.strip()!r}')
            try:
                values = [float(v) for v in fields[1:]]
            except ValueError:
                raise ValueError(f'Task1 detections {where}: score and coordinates must be '
                                 f'numbers: {line.strip()!r}') from None
            if not np.isfinite(values).all():
                raise ValueError(f'Task1 detections {where}: non-finite value: {line.strip()!r}')
            image_ids.append(fields[0])
            scores.append(values[0])
            quads.append(values[1:])
    return (image_ids, np.asarray(scores, np.float64),
            np.asarray(quads, np.float64).reshape(-1, 8))


def evaluate_task1(det_dir: str, ann_dir: str, classes: Sequence[str],
                   imageset: Sequence[str] | None = None, iou_thr: float = 0.5,
                   metric: str = 'voc07', mode: str = 'devkit', version: str = 'v1.0') -> dict:
    """Score a folder of ``Task1_<class>.txt`` files against a folder of raw ``labelTxt``.

    Args:
        det_dir: folder of the submission files; a class without a file has no detections
            (listed under ``missing_det_files``).
        ann_dir: folder of ``<image>.txt`` label files (:func:`mmrs.datasets.dota.read_dota_label`).
        classes: the class list (the devkit averages over all of it).
        imageset: image names to evaluate; default every ``*.txt`` of ``ann_dir`` (sorted).
        iou_thr, metric, mode: see :func:`dota_map`. In mmrotate mode the quadrilaterals are
            compared with mmcv's ``box_iou_quadri`` (mmrotate's ``predict_box_type='qbox'``).
        version: DOTA version named in label errors.

    Returns:
        :func:`dota_map`'s dict plus ``num_images`` and ``missing_det_files``.

    Raises:
        FileNotFoundError: A missing folder or label file.
        ValueError: A malformed line, or a detection on an image outside the image set.
    """
    import os
    import os.path as osp

    from mmrs.datasets.dota import read_dota_label

    check_options(mode, metric)
    for folder in (det_dir, ann_dir):
        if not osp.isdir(folder):
            raise FileNotFoundError(f'not a folder: {folder!r}')
    if imageset is None:
        imageset = sorted(osp.splitext(n)[0] for n in os.listdir(ann_dir) if n.endswith('.txt'))
        if not imageset:
            raise FileNotFoundError(f'no *.txt label files in {ann_dir!r}')
    index = {name: i for i, name in enumerate(imageset)}
    if len(index) != len(imageset):
        raise ValueError('the image set lists an image twice')
    labels = [read_dota_label(osp.join(ann_dir, f'{name}.txt'), classes, version)
              for name in imageset]
    gt_img = np.concatenate([np.full(len(lab['labels']), i) for i, lab in enumerate(labels)])
    gt_label = np.concatenate([lab['labels'] for lab in labels])
    gt_quads = np.concatenate([lab['polys'] for lab in labels]).reshape(-1, 8)
    gt_difficult = np.concatenate([lab['difficult'] for lab in labels]) != 0
    per_class, missing = [], []
    for c, name in enumerate(classes):
        path = osp.join(det_dir, f'Task1_{name}.txt')
        if osp.isfile(path):
            ids, scores, quads = read_task1_file(path)
        else:
            missing.append(osp.basename(path))
            ids, scores, quads = [], np.zeros(0), np.zeros((0, 8))
        unknown = sorted(set(ids) - index.keys())
        if unknown:
            raise ValueError(f'{path!r}: detections on images not in the image set: '
                             f'{unknown[:5]}' + (' ...' if len(unknown) > 5 else ''))
        sel = gt_label == c
        per_class.append(ClassData(np.array([index[i] for i in ids], np.int64), scores, quads,
                                   gt_img[sel].astype(np.int64), gt_quads[sel],
                                   gt_difficult[sel]))
    result = dota_map(per_class, classes, len(imageset), iou_thr, metric, mode)
    result.update(num_images=len(imageset), missing_det_files=missing)
    return result
