"""SparseRBboxOverlaps2D: the same overlaps as mmrotate's RBboxOverlaps2D, fewer kernel calls.

Oracles: mmrotate's ``RBboxOverlaps2D`` (all pairs through mmcv's kernel) and closed-form
areas of hand-made boxes.
"""
import math
from pathlib import Path

import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from mmrotate.structures.bbox import RotatedBoxes

import mmrs.models  # noqa: F401 (registers the calculator)
from mmrs.models.task_utils import SparseRBboxOverlaps2D, candidate_pairs, enclosing_hboxes
from mmrs.models.task_utils import rotated_iou_calculator as calc_mod
from mmrs.registry import TASK_UTILS

torch.set_num_threads(1)


@pytest.fixture(scope='module')
def reference():
    init_default_scope('mmrs')
    return TASK_UTILS.build(dict(type='mmrotate.RBboxOverlaps2D'))


@pytest.fixture(scope='module')
def sparse():
    init_default_scope('mmrs')
    return TASK_UTILS.build(dict(type='SparseRBboxOverlaps2D'))


def random_boxes(n: int, seed: int, extent: float = 200., max_size: float = 40.) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * extent
    wh = torch.rand(n, 2, generator=g) * max_size
    t = (torch.rand(n, 1, generator=g) - 0.5) * math.pi
    boxes = torch.cat([xy, wh, t], dim=1)
    # degenerate rows: zero width, zero height, both, sub-clamp sizes
    boxes[0, 2] = 0.
    boxes[1, 3] = 0.
    boxes[2, 2:4] = 0.
    boxes[3, 2:4] = 1e-5
    return boxes


class CountingKernel:
    """Wraps mmcv's box_iou_rotated to count the pairs it evaluates."""

    def __init__(self, original):
        self.original, self.pairs = original, 0

    def __call__(self, b1, b2, mode='iou', aligned=False, clockwise=True):
        self.pairs += b1.shape[0] if aligned else b1.shape[0] * b2.shape[0]
        return self.original(b1, b2, mode, aligned, clockwise)


@pytest.mark.parametrize('mode', ['iou', 'iof'])
def test_random_boxes_match_reference_with_fewer_pairs(mode, reference, sparse, monkeypatch):
    b1, b2 = random_boxes(300, 0), random_boxes(40, 1)
    counter = CountingKernel(calc_mod.box_iou_rotated)
    monkeypatch.setattr(calc_mod, 'box_iou_rotated', counter)
    got = sparse(b1, b2, mode)
    want = reference(b1, b2, mode)
    assert got.shape == want.shape == (300, 40) and got.dtype == want.dtype
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert (want > 0).sum() > 50 and (want == 0).sum() > 1000  # a mixed case
    assert 0 < counter.pairs < 300 * 40 // 4  # only candidate pairs reach the kernel


def test_all_overlapping(reference, sparse):
    g = torch.Generator().manual_seed(3)
    n = 60
    boxes = torch.cat([50 + torch.rand(n, 2, generator=g), 80 + torch.rand(n, 2, generator=g) * 20,
                       (torch.rand(n, 1, generator=g) - 0.5) * math.pi], dim=1)
    got, want = sparse(boxes, boxes[:25]), reference(boxes, boxes[:25])
    assert torch.all(want > 0)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_none_overlapping_never_calls_kernel(sparse, monkeypatch):
    # a 10 x 10 grid of rotated squares 100 px apart, against squares in the gaps
    ij = torch.stack(torch.meshgrid(torch.arange(10.), torch.arange(10.), indexing='ij'), -1)
    centres = ij.reshape(-1, 2) * 100
    b1 = torch.cat([centres, torch.full((100, 2), 30.), torch.full((100, 1), 0.7)], dim=1)
    b2 = b1.clone()
    b2[:, :2] += 50
    counter = CountingKernel(calc_mod.box_iou_rotated)
    monkeypatch.setattr(calc_mod, 'box_iou_rotated', counter)
    got = sparse(b1, b2)
    assert got.shape == (100, 100) and torch.count_nonzero(got) == 0
    assert counter.pairs == 0


def test_closed_form_values(sparse):
    square = torch.tensor([[0., 0., 2., 2., 0.]])
    shifted = torch.tensor([[1., 0., 2., 2., 0.]])  # overlap 1 x 2: IoU 2 / 6
    diamond = torch.tensor([[0., 0., 2., 2., math.pi / 4]])  # octagon: IoU 1 / sqrt(2)
    far = torch.tensor([[10., 10., 2., 2., 0.3]])
    # a diamond whose enclosing box overlaps the square's corner, the shapes do not touch
    corner = torch.tensor([[1. + math.sqrt(2) * 0.5 + 0.3, 1. + math.sqrt(2) * 0.5 + 0.3,
                            1., 1., math.pi / 4]])
    ious = sparse(square, torch.cat([square, shifted, diamond, far, corner]))
    expected = torch.tensor([[1., 1 / 3, 1 / math.sqrt(2), 0., 0.]])
    torch.testing.assert_close(ious, expected, rtol=0, atol=1e-5)
    iof = sparse(torch.tensor([[0., 0., 1., 1., 0.]]), square, mode='iof')  # inside: 1
    torch.testing.assert_close(iof, torch.ones(1, 1), rtol=0, atol=1e-6)


def test_touching_and_nearly_touching_pairs_are_kept(reference, sparse):
    # edge-sharing boxes and boxes 1e-4 px apart: the margin keeps them for the kernel
    base = torch.tensor([[100., 100., 20., 10., 0.]])
    others = torch.tensor([[120., 100., 20., 10., 0.], [100., 110., 20., 10., 0.],
                           [120.0001, 100., 20., 10., 0.], [119.9999, 100., 20., 10., 0.],
                           [100., 100., 20., 10., math.pi / 2]])
    for mode in ('iou', 'iof'):
        torch.testing.assert_close(sparse(base, others, mode), reference(base, others, mode),
                                   rtol=0, atol=1e-6)
        torch.testing.assert_close(sparse(others, base, mode), reference(others, base, mode),
                                   rtol=0, atol=1e-6)


@pytest.mark.parametrize('rows,cols,aligned',
                         [(0, 7, False), (7, 0, False), (0, 0, False), (0, 0, True)])
def test_empty_inputs_have_mmrotate_shapes(rows, cols, aligned, reference, sparse):
    b1, b2 = random_boxes(max(rows, 4), 5)[:rows], random_boxes(max(cols, 4), 6)[:cols]
    assert sparse(b1, b2, is_aligned=aligned).shape == \
        reference(b1, b2, is_aligned=aligned).shape


def test_zero_column_inputs(reference, sparse):
    empty = torch.zeros(0)
    b2 = random_boxes(5, 7)
    assert sparse(empty, b2).shape == reference(empty, b2).shape == (0, 5)


@pytest.mark.parametrize('mode', ['iou', 'iof'])
def test_aligned_matches_reference(mode, reference, sparse):
    b1, b2 = random_boxes(50, 8, extent=30.), random_boxes(50, 9, extent=30.)
    got = sparse(b1, b2, mode, is_aligned=True)
    assert got.shape == (50,)
    torch.testing.assert_close(got, reference(b1, b2, mode, is_aligned=True), rtol=0, atol=1e-6)


def test_score_column_and_rotated_boxes(reference, sparse):
    b1, b2 = random_boxes(80, 10), random_boxes(20, 11)
    want = reference(b1, b2)
    scores1, scores2 = torch.rand(80, 1), torch.rand(20, 1)
    torch.testing.assert_close(sparse(torch.cat([b1, scores1], 1), torch.cat([b2, scores2], 1)),
                               want, rtol=0, atol=1e-6)
    torch.testing.assert_close(sparse(RotatedBoxes(b1), RotatedBoxes(b2)), want,
                               rtol=0, atol=1e-6)
    torch.testing.assert_close(sparse(RotatedBoxes(b1), b2, mode='iof'),
                               reference(b1, b2, mode='iof'), rtol=0, atol=1e-6)


@pytest.mark.parametrize('max_pairs', [1, 37, 1 << 30])
def test_chunking_does_not_change_results(max_pairs, reference):
    b1, b2 = random_boxes(90, 12), random_boxes(30, 13)
    got = SparseRBboxOverlaps2D(max_pairs=max_pairs)(b1, b2)
    torch.testing.assert_close(got, reference(b1, b2), rtol=0, atol=1e-6)


def test_huge_and_non_finite_coordinates(reference, sparse):
    b1 = random_boxes(20, 14)
    b2 = random_boxes(6, 15)
    b1[5, :2] = 3e7  # rbbox_overlaps clamps centres to +-1e7 ...
    b2[2, :2] = 2e7  # ... so these two meet at (1e7, 1e7)
    b2[2, 2:4] = 10.
    b1[5, 2:4] = 10.
    b1[6, 0] = float('nan')
    b2[3, 3] = float('inf')
    want = reference(b1, b2)
    got = sparse(b1, b2)
    assert want[5, 2] > 0.5 and got[5, 2] == want[5, 2]
    # mmcv's float32 kernel returns impossible values (> 1) for boxes ~1e7 px apart; those
    # pairs are disjoint, and 0 here. Every possible value is reproduced.
    impossible = want > 1
    assert impossible.sum() > 0 and torch.all(got[impossible] == 0)
    torch.testing.assert_close(got[~impossible], want[~impossible], rtol=0, atol=1e-6,
                               equal_nan=True)
    assert torch.all((got >= 0) & (got <= 1))


def test_enclosing_boxes_contain_corners():
    boxes = random_boxes(200, 16)
    hbox = enclosing_hboxes(boxes)
    corners = RotatedBoxes(boxes).convert_to('qbox').tensor.view(-1, 4, 2)
    assert torch.all(corners[..., 0] >= hbox[:, None, 0]) and \
        torch.all(corners[..., 0] <= hbox[:, None, 2])
    assert torch.all(corners[..., 1] >= hbox[:, None, 1]) and \
        torch.all(corners[..., 1] <= hbox[:, None, 3])


def test_candidate_pairs_against_brute_force():
    g = torch.Generator().manual_seed(17)
    lo = torch.rand(40, 2, generator=g) * 100
    a = torch.cat([lo, lo + torch.rand(40, 2, generator=g) * 20], 1)
    lo = torch.rand(25, 2, generator=g) * 100
    b = torch.cat([lo, lo + torch.rand(25, 2, generator=g) * 20], 1)
    rows, cols = candidate_pairs(a, b, max_pairs=64)
    got = {(int(r), int(c)) for r, c in zip(rows, cols)}
    want = {(i, j) for i in range(40) for j in range(25)
            if a[i, 0] <= b[j, 2] and b[j, 0] <= a[i, 2]
            and a[i, 1] <= b[j, 3] and b[j, 1] <= a[i, 3]}
    assert got == want and len(rows) == len(want)


def test_non_cpu_tensors_go_to_mmrotate(sparse, monkeypatch):
    calls = []

    def fake(b1, b2, mode, is_aligned):
        calls.append(b1.device.type)
        return b1.new_zeros(b1.shape[0], b2.shape[0])

    monkeypatch.setattr(calc_mod, 'rbbox_overlaps', fake)
    sparse(torch.zeros(3, 5, device='meta'), torch.zeros(2, 5, device='meta'))
    assert calls == ['meta']


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_reference(reference, sparse):
    b1, b2 = random_boxes(300, 18).cuda(), random_boxes(40, 19).cuda()
    torch.testing.assert_close(sparse(b1, b2), reference(b1, b2), rtol=0, atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match='mode'):
        SparseRBboxOverlaps2D()(random_boxes(4, 20), random_boxes(4, 21), mode='giou')
    with pytest.raises(ValueError, match='max_pairs'):
        SparseRBboxOverlaps2D(max_pairs=0)


def test_max_iou_assigner_gives_identical_assignment():
    """Built by mmdet's MaxIoUAssigner from a config under the mmrs scope."""
    init_default_scope('mmrs')
    base = dict(type='mmdet.MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0,
                ignore_iof_thr=-1)
    ref = TASK_UTILS.build(dict(base, iou_calculator=dict(type='mmrotate.RBboxOverlaps2D')))
    new = TASK_UTILS.build(dict(base, iou_calculator=dict(type='SparseRBboxOverlaps2D')))
    assert isinstance(new.iou_calculator, SparseRBboxOverlaps2D)
    # anchors: a 16-px grid of 32-px squares, as a RetinaNet level would give
    ij = torch.stack(torch.meshgrid(torch.arange(16.), torch.arange(16.), indexing='ij'), -1)
    xy = ij.reshape(-1, 2) * 16 + 8
    priors = torch.cat([xy, torch.full((256, 2), 32.), torch.zeros(256, 1)], 1)
    gts = random_boxes(30, 22, extent=256., max_size=60.)
    gt = InstanceData(bboxes=RotatedBoxes(gts), labels=torch.arange(30) % 5)
    pred = InstanceData(priors=RotatedBoxes(priors))
    a, b = ref.assign(pred, gt), new.assign(pred, gt)
    assert (a.gt_inds > 0).sum() > 10
    assert torch.equal(a.gt_inds, b.gt_inds) and torch.equal(a.labels, b.labels)
    torch.testing.assert_close(a.max_overlaps, b.max_overlaps, rtol=0, atol=1e-6)


CPU_CONFIGS = {
    'rotated_retinanet/rotated_retinanet_r18_fpn_cpu_dota_samples.py':
        lambda m: [m.bbox_head.assigner],
    'oriented_rcnn/oriented_rcnn_r18_fpn_cpu_dota_samples.py':
        lambda m: [m.roi_head.bbox_assigner],
    'roi_trans/roi_trans_r18_fpn_cpu_dota_samples.py':
        lambda m: [m.roi_head.bbox_assigner[1]],  # stage 1 compares horizontal boxes
}


@pytest.mark.parametrize('name', sorted(CPU_CONFIGS))
def test_cpu_configs_assign_with_the_sparse_calculator(name):
    from mmengine.config import Config
    from mmrs.registry import MODELS
    init_default_scope('mmrs')
    cfg = Config.fromfile(str(Path(__file__).resolve().parents[2] / 'configs' / name))
    model = MODELS.build(cfg.model)
    for assigner in CPU_CONFIGS[name](model):
        assert isinstance(assigner.iou_calculator, SparseRBboxOverlaps2D)
