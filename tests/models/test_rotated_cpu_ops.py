"""CPU paths of mmcv's CUDA-only rotated ops and class-wise rotated NMS, against shapely.

Oracles: shapely polygon areas (intersection / union / convex hull / minimum rotated
rectangle), hand-derived results of the CUDA kernels' rules on fixed cases, finite differences
for gradients, and mmcv's own CPU ``nms_rotated`` run class by class.
"""
import math
import sys
import types

import mmcv.ops
import numpy as np
import pytest
import torch
from shapely.geometry import MultiPoint, Point, Polygon

import mmrs.models  # noqa: F401  (installs the CPU paths)
from mmrs.models.ops import (batched_nms_rotated, box2corners, convex_giou, convex_iou,
                             cpu_rotated_ops_enabled, diff_iou_rotated_2d,
                             enable_cpu_rotated_ops, min_area_polygons, points_in_polygons)

DT = torch.float64


def rboxes(n: int, seed: int, span: float = 40.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ctr = torch.rand(n, 2, generator=g, dtype=DT) * span
    wh = torch.rand(n, 2, generator=g, dtype=DT) * 25 + 2
    ang = (torch.rand(n, 1, generator=g, dtype=DT) - 0.5) * math.pi
    return torch.cat([ctr, wh, ang], 1)


def quad(box: torch.Tensor) -> torch.Tensor:
    return box2corners(box).reshape(-1, 8)


def hull(row: torch.Tensor):
    return MultiPoint(row.reshape(-1, 2).tolist()).convex_hull


def poly(row: torch.Tensor) -> Polygon:
    return Polygon(row.reshape(-1, 2).tolist())


def shapely_iou(a, b) -> float:
    union = a.union(b).area
    return a.intersection(b).area / union if union > 0 else 0.0


def shapely_giou(a, b) -> float:
    union = a.union(b).area
    enclose = a.union(b).convex_hull.area
    return a.intersection(b).area / union - (enclose - union) / enclose


SQUARE = torch.tensor([[0., 0., 2., 0., 2., 2., 0., 2.]], dtype=DT)


def points9(*pts: tuple[float, float]) -> torch.Tensor:
    pts = list(pts) + [pts[-1]] * (9 - len(pts))
    return torch.tensor([sum(pts, ())], dtype=DT)


class TestConvexIoU:

    @pytest.mark.parametrize('pts, expected', [
        (points9((0, 0), (2, 0), (2, 2), (0, 2), (1, 1)), 1.0),  # identical shape
        (points9((2, 0), (4, 0), (4, 2), (2, 2)), 0.0),  # touching along an edge
        (points9((5, 5), (6, 5), (6, 6)), 0.0),  # no overlap
        (points9((1, 0), (3, 0), (3, 2), (1, 2)), 1 / 3),  # half overlap: 2 / 6
        (points9((0, 1), (4, 1), (2, 1)), 0.0),  # collinear points: zero-area hull
        (points9((1, 1)), 0.0),  # all nine points equal
        (points9((-1, -1), (3, -1), (3, 3), (-1, 3), (0, 0), (1, 0), (1, 2)), 0.25),  # contains
    ])
    def test_fixed(self, pts, expected) -> None:
        assert convex_iou(pts, SQUARE).item() == pytest.approx(expected, abs=1e-12)

    def test_random_against_shapely(self) -> None:
        g = torch.Generator().manual_seed(1)
        pts = torch.rand(60, 18, generator=g, dtype=DT) * 40
        quads = quad(rboxes(9, seed=2))
        ious = convex_iou(pts, quads)
        ref = np.array([[shapely_iou(hull(p), poly(q)) for q in quads] for p in pts])
        assert ious.shape == (60, 9)
        np.testing.assert_allclose(ious.numpy(), ref, atol=1e-10)
        assert (ref > 0.05).sum() > 20  # the random case really overlaps

    def test_float32_and_bad_shape(self) -> None:
        out = convex_iou(points9((0, 0), (2, 0), (2, 2), (0, 2)).float(), SQUARE.float())
        assert out.dtype == torch.float32 and out.item() == pytest.approx(1.0)
        with pytest.raises(ValueError, match=r'\(N, 18\)'):
            convex_iou(torch.zeros(3, 16), SQUARE)


class TestConvexGIoU:

    def test_values_and_gradient(self) -> None:
        g = torch.Generator().manual_seed(3)
        boxes = rboxes(8, seed=4)
        # point sets scattered around each box, so hulls and boxes overlap partly
        pts = (box2corners(boxes).repeat(1, 3, 1)[:, :9] +
               torch.randn(8, 9, 2, generator=g, dtype=DT) * 4).reshape(8, 18)
        target = quad(rboxes(8, seed=4) + torch.tensor([2., 1, 0, 0, 0.2], dtype=DT))
        giou, grad = convex_giou(pts, target)
        ref = [shapely_giou(hull(p), poly(q)) for p, q in zip(pts, target)]
        np.testing.assert_allclose(giou.numpy(), ref, atol=1e-10)
        # gradient against central finite differences of the shapely value
        h = 1e-6
        for row in range(3):
            for col in range(18):
                plus, minus = pts[row].clone(), pts[row].clone()
                plus[col] += h
                minus[col] -= h
                fd = (shapely_giou(hull(plus), poly(target[row])) -
                      shapely_giou(hull(minus), poly(target[row]))) / (2 * h)
                assert grad[row, col].item() == pytest.approx(fd, abs=1e-5)


class TestMinAreaPolygons:

    def test_axis_aligned_rectangle_kernel_corner_order(self) -> None:
        pts = points9((0, 0), (1, 0), (2, 0), (2, 1), (1, 1), (0, 1), (1, 0.5))
        out = min_area_polygons(pts).reshape(4, 2)
        # (xmax, ymin), (xmin, ymin), (xmin, ymax), (xmax, ymax)
        expected = torch.tensor([[2., 0], [0, 0], [0, 1], [2, 1]], dtype=DT)
        torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)

    def test_random_against_shapely(self) -> None:
        g = torch.Generator().manual_seed(5)
        pts = torch.rand(40, 18, generator=g, dtype=DT) * 30
        out = min_area_polygons(pts)
        for p, r in zip(pts, out):
            rect = poly(r)
            assert rect.area == pytest.approx(hull(p).minimum_rotated_rectangle.area, rel=1e-9)
            assert rect.buffer(1e-7).contains(MultiPoint(p.reshape(9, 2).tolist()))
            c = r.reshape(4, 2)
            sides = (c.roll(-1, 0) - c)
            assert torch.dot(sides[0], sides[1]).abs() < 1e-7  # right angles: a rectangle

    def test_collinear_points_give_a_flat_rectangle(self) -> None:
        out = min_area_polygons(points9((0, 0), (1, 1), (3, 3)))
        assert poly(out[0]).area == pytest.approx(0, abs=1e-9)


class TestPointsInPolygons:

    def test_kernel_boundary_rules(self) -> None:
        """Hand-traced through the CUDA kernel: edges (v0,v3),(v1,v0),(v2,v1),(v3,v2); a point on
        a vertex or on a crossed edge stops the count, so the top edge counts as inside and the
        left/right edges and the vertices as outside."""
        square = torch.tensor([[0., 0, 1, 0, 1, 1, 0, 1]])
        pts = torch.tensor([[0.5, 0.5], [1.5, 0.5], [0, 0], [1, 0.5], [0, 0.5], [0.5, 1],
                            [0.5, -0.1]])
        out = points_in_polygons(pts, square)
        assert out.dtype == torch.float32
        assert out[:, 0].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]

    def test_random_against_shapely(self) -> None:
        g = torch.Generator().manual_seed(6)
        quads = quad(rboxes(6, seed=7)).float()
        pts = torch.rand(300, 2, generator=g) * 40
        out = points_in_polygons(pts, quads)
        ref = np.array([[poly(q.double()).contains(Point(p.tolist())) for q in quads]
                        for p in pts], dtype=np.float32)
        np.testing.assert_array_equal(out.numpy(), ref)
        assert ref.sum() > 10


class TestDiffIoURotated:

    def test_fixed(self) -> None:
        b = torch.tensor([[[0., 0, 4, 2, 0], [0, 0, 4, 2, 0], [0, 0, 2, 2, 0], [0, 0, 2, 2, 0],
                           [0, 0, 2, 2, 0]]])
        o = torch.tensor([[[0., 0, 4, 2, 0], [0, 0, 4, 2, math.pi], [2, 0, 2, 2, 0],
                           [5, 5, 2, 2, 0.3], [0, 0, 2, 2, math.pi / 4]]])
        iou = diff_iou_rotated_2d(b, o)
        octagon = 8 * (math.sqrt(2) - 1)  # overlap of a square and itself turned 45 degrees
        expected = [1.0, 1.0, 0.0, 0.0, octagon / (8 - octagon)]
        np.testing.assert_allclose(iou[0].numpy(), expected, atol=1e-6)

    def test_random_against_shapely_and_gradient(self) -> None:
        a, b = rboxes(30, seed=8), rboxes(30, seed=9, span=25)
        b[:, :2] = a[:, :2] + (b[:, :2] - 12.5) * 0.4  # overlapping pairs
        a.requires_grad_(True)
        iou = diff_iou_rotated_2d(a[None], b[None])[0]
        ref = [shapely_iou(poly(quad(x.detach())), poly(quad(y))) for x, y in zip(a, b)]
        np.testing.assert_allclose(iou.detach().numpy(), ref, atol=1e-10)
        assert (np.array(ref) > 0.1).sum() > 10
        iou.sum().backward()
        assert torch.isfinite(a.grad).all()
        h, row = 1e-6, int(np.argmax(np.array(ref) < 0.9))
        for col in range(5):
            plus, minus = a[row].detach().clone(), a[row].detach().clone()
            plus[col] += h
            minus[col] -= h
            fd = (shapely_iou(poly(quad(plus)), poly(quad(b[row]))) -
                  shapely_iou(poly(quad(minus)), poly(quad(b[row])))) / (2 * h)
            assert a.grad[row, col].item() == pytest.approx(fd, abs=1e-5)

    def test_small_boxes_far_from_origin_in_float32(self) -> None:
        """Whole-scene coordinates (~2e4 px) in float32: same IoU as the same pair at the
        origin, so no precision is lost to the shoelace products or the tolerances."""
        a, b = rboxes(20, seed=30, span=6).float(), rboxes(20, seed=31, span=6).float()
        shift = torch.tensor([20000., 15000, 0, 0, 0])
        near = diff_iou_rotated_2d(a[None], b[None])
        far = diff_iou_rotated_2d((a + shift)[None], (b + shift)[None])
        np.testing.assert_allclose(far.numpy(), near.numpy(), atol=2e-4)
        assert (near > 0.1).sum() > 5
        pts, quads = quad(a.double()).repeat(1, 3)[:, :18].float(), quad(b.double()).float()
        offset = shift[:2].repeat(9)
        np.testing.assert_allclose(convex_iou(pts + offset, quads + offset[:8]).numpy(),
                                   convex_iou(pts, quads).numpy(), atol=2e-4)

    def test_identical_boxes_have_finite_gradients(self) -> None:
        a = torch.tensor([[[3., 4, 5, 2, 0.7]]], requires_grad=True)
        iou = diff_iou_rotated_2d(a, a.detach().clone())
        iou.sum().backward()
        assert iou.item() == pytest.approx(1.0, abs=1e-6) and torch.isfinite(a.grad).all()


class TestDispatch:

    def test_mmcv_functions_are_wrapped(self) -> None:
        assert cpu_rotated_ops_enabled()
        assert enable_cpu_rotated_ops() == {k: [] for k in enable_cpu_rotated_ops()}
        for name in ('convex_iou', 'convex_giou', 'min_area_polygons', 'points_in_polygons',
                     'diff_iou_rotated_2d', 'nms_rotated', 'batched_nms'):
            assert getattr(getattr(mmcv.ops, name), '_mmrs_cpu_fallback', False), name
        pts = points9((0, 0), (2, 0), (2, 2), (0, 2))
        assert mmcv.ops.convex_iou(pts, SQUARE).item() == pytest.approx(1.0)

    def test_already_imported_modules_are_patched(self, monkeypatch) -> None:
        wrapper = mmcv.ops.convex_iou
        original = wrapper.__wrapped__
        fake = types.ModuleType('mmrotate._fake_user')
        fake.convex_iou = original  # as ``from mmcv.ops import convex_iou`` did before patching
        monkeypatch.setitem(sys.modules, 'mmrotate._fake_user', fake)
        monkeypatch.setattr(mmcv.ops, 'convex_iou', original)
        report = enable_cpu_rotated_ops()
        assert 'mmrotate._fake_user' in report['convex_iou'] and 'mmcv.ops' in report['convex_iou']
        assert fake.convex_iou is mmcv.ops.convex_iou is not original
        with pytest.raises(Exception):
            original(torch.zeros(1, 18), torch.zeros(1, 8))  # the raw CPU op really is missing

    def test_mmrotate_modules_use_cpu_path(self) -> None:
        from mmrotate.models.losses import convex_giou_loss, rotated_iou_loss
        from mmrotate.models.task_modules.assigners import (max_convex_iou_assigner,
                                                            sas_assigner)
        from mmdet.models.dense_heads import base_dense_head
        from mmdet.models.layers import bbox_nms
        for fn in (bbox_nms.batched_nms, base_dense_head.batched_nms,
                   convex_giou_loss.convex_giou, rotated_iou_loss.diff_iou_rotated_2d,
                   max_convex_iou_assigner.convex_iou, sas_assigner.convex_iou,
                   sas_assigner.points_in_polygons):
            assert getattr(fn, '_mmrs_cpu_fallback', False), fn

    @pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
    def test_cuda_tensors_keep_cuda_kernel(self) -> None:
        pts = torch.rand(20, 18, dtype=torch.float32) * 30
        quads = quad(rboxes(4, seed=11)).float()
        cpu = mmcv.ops.convex_iou(pts, quads)
        gpu = mmcv.ops.convex_iou(pts.cuda(), quads.cuda()).cpu()
        np.testing.assert_allclose(gpu.numpy(), cpu.numpy(), atol=1e-4)
        pip = mmcv.ops.points_in_polygons(pts[:, :2].cuda(), quads.cuda()).cpu()
        np.testing.assert_array_equal(pip.numpy(), points_in_polygons(pts[:, :2], quads).numpy())
        rect = mmcv.ops.min_area_polygons(pts.cuda()).cpu()
        np.testing.assert_allclose(rect.numpy(), min_area_polygons(pts).numpy(), atol=1e-2)
        giou_gpu, _ = mmcv.ops.convex_giou(pts[:4].cuda(), quads.cuda())
        np.testing.assert_allclose(giou_gpu.cpu().numpy(),
                                   convex_giou(pts[:4], quads)[0].numpy(), atol=1e-4)
        a, b = rboxes(50, seed=12).float(), rboxes(50, seed=13).float()
        iou_gpu = mmcv.ops.diff_iou_rotated_2d(a[None].cuda(), b[None].cuda()).cpu()
        np.testing.assert_allclose(iou_gpu.numpy(), diff_iou_rotated_2d(a[None], b[None]).numpy(),
                                   atol=1e-4)
        scores, labels = torch.rand(50), torch.randint(0, 3, (50,))
        _, keep_gpu = mmcv.ops.nms_rotated(a.cuda(), scores.cuda(), 0.2, labels=labels.cuda())
        _, keep_cpu = mmcv.ops.nms_rotated(a, scores, 0.2, labels=labels)
        assert sorted(keep_gpu.cpu().tolist()) == sorted(keep_cpu.tolist())


class TestMMRotateModulesOnCPU:

    def test_convex_giou_loss(self) -> None:
        from mmrotate.models.losses import ConvexGIoULoss
        g = torch.Generator().manual_seed(12)
        target = quad(rboxes(6, seed=13)).float()
        pred = (target.reshape(6, 4, 2).repeat(1, 3, 1)[:, :9] +
                torch.randn(6, 9, 2, generator=g) * 3).reshape(6, 18).requires_grad_(True)
        loss = ConvexGIoULoss(loss_weight=1.0)(pred, target)
        ref = np.mean([1 - shapely_giou(hull(p.detach().double()), poly(q.double()))
                       for p, q in zip(pred, target)])
        assert loss.item() == pytest.approx(ref, abs=1e-5)
        loss.backward()
        assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0

    def test_rotated_iou_loss(self) -> None:
        from mmrotate.models.losses import RotatedIoULoss
        a, b = rboxes(10, seed=14).float(), rboxes(10, seed=14).float()
        b[:, :2] += 3
        b[:, 4] += 0.3
        a.requires_grad_(True)
        loss = RotatedIoULoss(mode='linear', loss_weight=1.0)(a, b)
        ref = np.mean([1 - shapely_iou(poly(quad(x.detach().double())), poly(quad(y.double())))
                       for x, y in zip(a, b)])
        assert loss.item() == pytest.approx(ref, abs=1e-5)
        loss.backward()
        assert torch.isfinite(a.grad).all()

    def test_max_convex_iou_assigner_overlaps(self) -> None:
        from mmrotate.models.task_modules.assigners import MaxConvexIoUAssigner
        g = torch.Generator().manual_seed(15)
        pts = (torch.rand(30, 18, generator=g) * 40).float()
        gts = quad(rboxes(3, seed=16)).float()
        overlaps = MaxConvexIoUAssigner(pos_iou_thr=0.3, neg_iou_thr=0.1).convex_overlaps(gts, pts)
        ref = np.array([[shapely_iou(hull(p.double()), poly(q.double())) for p in pts]
                        for q in gts])
        np.testing.assert_allclose(overlaps.numpy(), ref, atol=1e-5)

    def test_sas_assigner_runs(self) -> None:
        from mmengine.structures import InstanceData
        from mmrotate.models.task_modules.assigners import SASAssigner
        gt_boxes = torch.tensor([[20., 20, 16, 8, 0.4], [8, 30, 6, 10, -0.3]])
        xs, ys = torch.meshgrid(torch.arange(2., 40, 4), torch.arange(2., 40, 4), indexing='xy')
        centres = torch.stack([xs.flatten(), ys.flatten()], 1)
        offsets = torch.tensor([[dx, dy] for dx in (-2., 0, 2) for dy in (-2., 0, 2)])
        priors = (centres[:, None] + offsets[None]).reshape(-1, 18)
        result = SASAssigner(topk=4).assign(
            InstanceData(priors=priors), [priors.shape[0]],
            InstanceData(bboxes=quad(gt_boxes.double()).float(), labels=torch.tensor([0, 1])))
        assigned = result.gt_inds > 0
        assert assigned.sum() > 0
        # every assigned prior's centre lies in its ground truth box (points_in_polygons)
        for idx in assigned.nonzero()[:, 0]:
            gt = poly(quad(gt_boxes[result.gt_inds[idx] - 1].double()))
            assert gt.contains(Point(priors[idx].reshape(9, 2).mean(0).tolist()))


def per_class(boxes, scores, labels, thr) -> list[int]:
    """Reference: mmcv's CPU nms_rotated (without labels) class by class."""
    raw = mmcv.ops.nms_rotated.__wrapped__
    keep = []
    for c in labels.unique():
        idx = (labels == c).nonzero()[:, 0]
        _, k = raw(boxes[idx], scores[idx], thr)
        keep += idx[k].tolist()
    return sorted(keep, key=lambda i: -scores[i].item())


class TestClassWiseRotatedNMS:
    BOXES = torch.tensor([[10., 10, 8, 4, 0.1], [10.5, 10, 8, 4, 0.12]])
    SCORES = torch.tensor([0.9, 0.8])

    def test_mmcv_cpu_kernel_ignores_labels(self) -> None:
        raw = mmcv.ops.nms_rotated.__wrapped__
        _, keep = raw(self.BOXES, self.SCORES, 0.5, labels=torch.tensor([0, 1]))
        assert keep.tolist() == [0]  # the class-1 box was suppressed by the class-0 box

    def test_mmcv_batched_nms_offsets_fail_for_negative_centres(self) -> None:
        """mmcv shifts class k by k * (max centre + max side + 1): with centres below -1 two
        far-apart boxes of different classes land on each other and one is dropped."""
        boxes = torch.tensor([[0., 0, 50, 50, 0], [-200, -200, 50, 50, 0],
                              [-251, -251, 50, 50, 0]])
        scores, labels = torch.tensor([0.5, 0.9, 0.8]), torch.tensor([0, 0, 1])
        cfg = dict(type='nms_rotated', iou_threshold=0.5)
        _, keep = mmcv.ops.batched_nms.__wrapped__(boxes, scores, labels, cfg)
        assert sorted(keep.tolist()) == [0, 1]
        _, keep = mmcv.ops.batched_nms(boxes, scores, labels, cfg)
        assert keep.tolist() == [1, 2, 0]

    def test_two_classes_both_kept_same_class_one_kept(self) -> None:
        dets, keep = batched_nms_rotated(self.BOXES, self.SCORES, torch.tensor([0, 1]), 0.5)
        assert keep.tolist() == [0, 1] and dets.shape == (2, 6)
        torch.testing.assert_close(dets[:, :5], self.BOXES)
        _, keep = batched_nms_rotated(self.BOXES, self.SCORES, torch.tensor([3, 3]), 0.5)
        assert keep.tolist() == [0]
        # the patched mmcv entry points agree
        _, keep = mmcv.ops.nms_rotated(self.BOXES, self.SCORES, 0.5, labels=torch.tensor([0, 1]))
        assert keep.tolist() == [0, 1]

    @pytest.mark.parametrize('seed', [0, 1, 2])
    def test_equals_per_class_loop(self, seed) -> None:
        g = torch.Generator().manual_seed(seed)
        boxes = rboxes(150, seed=seed + 20, span=60).float()
        scores = torch.rand(150, generator=g)
        labels = torch.randint(0, 5, (150,), generator=g)
        _, keep = batched_nms_rotated(boxes, scores, labels, 0.3)
        assert keep.tolist() == per_class(boxes, scores, labels, 0.3)
        assert len(keep) < 150  # something was suppressed

    def test_mmdet_multiclass_nms_rotated_is_class_aware(self) -> None:
        from mmdet.models.layers import multiclass_nms
        boxes = torch.tensor([[-40., -40, 60, 20, 0.7], [-41, -40, 60, 20, 0.7],
                              [30, 30, 10, 10, 0]])
        # (N, num_classes + 1) scores, background last; box 0/1 score high in class 0 and 1
        scores = torch.tensor([[0.9, 0.0, 0.0], [0.0, 0.8, 0.0], [0.7, 0.0, 0.0]])
        dets, labels = multiclass_nms(boxes, scores, 0.05,
                                      dict(type='nms_rotated', iou_threshold=0.1), box_dim=5)
        assert sorted(labels.tolist()) == [0, 0, 1]
        same = torch.tensor([[0.9, 0.0, 0.0], [0.8, 0.0, 0.0], [0.7, 0.0, 0.0]])
        _, labels = multiclass_nms(boxes, same, 0.05,
                                   dict(type='nms_rotated', iou_threshold=0.1), box_dim=5)
        assert sorted(labels.tolist()) == [0, 0]
        # far-apart boxes with negative centres, which mmcv's own offsets merge (see above)
        far = torch.tensor([[0., 0, 50, 50, 0], [-200, -200, 50, 50, 0], [-251, -251, 50, 50, 0]])
        far_scores = torch.tensor([[0.5, 0.0, 0.0], [0.9, 0.0, 0.0], [0.0, 0.8, 0.0]])
        dets, labels = multiclass_nms(far, far_scores, 0.05,
                                      dict(type='nms_rotated', iou_threshold=0.5), box_dim=5)
        assert sorted(labels.tolist()) == [0, 0, 1]
        torch.testing.assert_close(dets[:, :5], far[[1, 2, 0]])

    def test_rotated_retinanet_head_predict_on_cpu(self, monkeypatch) -> None:
        """The shipped Rotated RetinaNet head (mmdet RetinaHead + rotated coder) predicts on the
        CPU through the class-wise path: within a class no kept pair overlaps above the NMS
        threshold, across classes overlapping boxes survive."""
        from mmengine.config import ConfigDict
        from mmengine.registry import DefaultScope
        from mmrotate.registry import MODELS as ROTATE_MODELS
        from mmrotate.utils import register_all_modules

        from mmrs.models.ops import dispatch
        register_all_modules(init_default_scope=False)
        calls = []
        original = dispatch._class_offsets
        monkeypatch.setattr(dispatch, '_class_offsets',
                            lambda *a: calls.append(1) or original(*a))
        torch.manual_seed(0)
        with DefaultScope.overwrite_default_scope('mmrotate'):
            head = ROTATE_MODELS.build(dict(
                type='mmdet.RetinaHead', num_classes=3, in_channels=4, stacked_convs=1,
                feat_channels=4,
                anchor_generator=dict(type='FakeRotatedAnchorGenerator', angle_version='le90',
                                      octave_base_scale=4, scales_per_octave=1, ratios=[1.0],
                                      strides=[8, 16]),
                bbox_coder=dict(type='DeltaXYWHTRBBoxCoder', angle_version='le90',
                                norm_factor=None, edge_swap=True, proj_xy=True,
                                target_means=(.0, ) * 5, target_stds=(1.0, ) * 5),
                loss_cls=dict(type='mmdet.FocalLoss', use_sigmoid=True),
                loss_bbox=dict(type='mmdet.L1Loss')))
        cls, reg = head([torch.randn(1, 4, 8, 8), torch.randn(1, 4, 4, 4)])
        cfg = ConfigDict(nms_pre=2000, min_bbox_size=0, score_thr=0.0, max_per_img=2000,
                         nms=dict(type='nms_rotated', iou_threshold=0.1))
        res = head.predict_by_feat(cls, reg, cfg=cfg, rescale=False, batch_img_metas=[
            dict(img_shape=(64, 64), scale_factor=(1., 1.))])[0]
        assert calls, 'the class-wise CPU path was not used'
        boxes, labels = res.bboxes.tensor, res.labels
        iou = mmcv.ops.box_iou_rotated(boxes, boxes)
        same = labels[:, None] == labels[None]
        off_diag = ~torch.eye(len(labels), dtype=torch.bool)
        assert iou[same & off_diag].max() < 0.1
        assert iou[~same].max() > 0.1  # class-agnostic NMS would have removed one of these

    def test_empty_and_bad_input(self) -> None:
        dets, keep = batched_nms_rotated(torch.zeros(0, 5), torch.zeros(0),
                                         torch.zeros(0, dtype=torch.long), 0.5)
        assert dets.shape == (0, 6) and keep.numel() == 0
        with pytest.raises(ValueError, match='disagree'):
            batched_nms_rotated(torch.zeros(2, 5), torch.zeros(3), torch.zeros(2), 0.5)
