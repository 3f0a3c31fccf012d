"""Pure-torch CPU versions of mmcv's CUDA-only rotated-box ops.

mmcv compiles ``convex_iou``, ``convex_giou``, ``min_area_polygons``, ``points_in_polygons`` and
the vertex sort behind ``diff_iou_rotated_2d`` for CUDA only, so Rotated FCOS/ATSS, the RepPoints
family and ``RotatedIoULoss`` cannot run on the CPU. These functions follow the definitions of
the CUDA kernels (``mmcv/ops/csrc/common/cuda/*.cuh``), vectorised over every row:

- a convex polygon is held as its vertices sorted counter-clockwise by angle around their mean,
  padded with copies of the first vertex, so padding adds zero area and zero-length edges;
- the intersection of two convex polygons is the convex polygon spanned by the vertices of each
  that lie inside the other plus the crossings of their edges (the construction mmcv's
  ``diff_iou_rotated.py`` uses for boxes); sorting those points by angle and applying the shoelace
  formula gives its area.

Known differences from the kernels: a 0/0 IoU (both shapes of zero area) is 0, not NaN; the
polygons ``(K, 8)`` are taken as convex (they are boxes everywhere mmrotate calls these ops).
"""
import math

import torch
from torch import Tensor

#: Pairs per chunk in :func:`convex_iou`, so no chunk allocates more than ~100 MB.
_PAIR_CHUNK = 1 << 15


def _cross(o: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """z-component of ``(a - o) x (b - o)``, broadcast over leading dims."""
    return (a[..., 0] - o[..., 0]) * (b[..., 1] - o[..., 1]) - \
        (a[..., 1] - o[..., 1]) * (b[..., 0] - o[..., 0])


def _tolerance(points: Tensor) -> Tensor:
    """Per-row absolute tolerance for cross products of (locally centred) coordinates.

    Relative to the squared extent of the row, looser in float32 whose cross products carry
    ~1e-7 relative error, so a corner exactly on an edge still counts as inside.
    """
    rel = 1e-10 if points.dtype == torch.float64 else 1e-5
    scale = points.detach().abs().flatten(1).amax(dim=1)
    return (scale * scale).clamp(min=1e-12) * rel


def sort_vertices(points: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Sort the valid points of each row counter-clockwise around their mean.

    This is the torch counterpart of mmcv's CUDA ``sort_vertices``: the order is not
    differentiable, the gathered coordinates are.

    Args:
        points: ``(M, P, 2)`` candidate vertices.
        valid: ``(M, P)`` bool mask of the points that belong to the polygon.

    Returns:
        ``(sorted_points (M, P, 2), count (M,))``: valid points first, in counter-clockwise
        order, then copies of the first one (or zeros where a row has no valid point).
    """
    with torch.no_grad():
        count = valid.sum(dim=1)
        w = valid.to(points.dtype).unsqueeze(-1)
        mean = (points * w).sum(dim=1, keepdim=True) / count.clamp(min=1)[:, None, None]
        rel = points.detach() - mean
        angle = torch.atan2(rel[..., 1], rel[..., 0])
        angle = torch.where(valid, angle, torch.full_like(angle, 10.0))
        order = angle.argsort(dim=1, stable=True)
        rank = torch.arange(points.shape[1], device=points.device).expand_as(order)
        # padding slots point at the first sorted vertex so they add no area
        order = torch.where(rank < count[:, None], order, order[:, :1])
    gathered = points.gather(1, order.unsqueeze(-1).expand(-1, -1, 2))
    empty = (count == 0)[:, None, None]
    gathered = torch.where(empty, torch.zeros_like(gathered), gathered)
    return gathered, count


def polygon_area(vertices: Tensor) -> Tensor:
    """Unsigned shoelace area of ``(M, P, 2)`` closed polygons (last vertex joins the first)."""
    # relative to the first vertex: the shoelace products of raw image coordinates cancel badly
    vertices = vertices - vertices[:, :1].detach()
    nxt = vertices.roll(-1, dims=1)
    twice = (vertices[..., 0] * nxt[..., 1] - vertices[..., 1] * nxt[..., 0]).sum(dim=1)
    return twice.abs() / 2


def convex_hull(points: Tensor) -> tuple[Tensor, Tensor]:
    """Convex hull of each row of points, as a sorted padded polygon.

    A point is on the hull when it starts a directed edge with every other point on its left
    (or on the line); repeated points count once. Collinear points on a hull side are kept (they
    add no area). A row whose points all coincide gives that single point.

    Args:
        points: ``(M, P, 2)``.

    Returns:
        ``(hull (M, P, 2), count (M,))`` as :func:`sort_vertices` returns them.
    """
    m, p, _ = points.shape
    with torch.no_grad():
        pts = points.detach()
        pts = pts - pts.mean(dim=1, keepdim=True)  # tolerances follow the local extent
        tol = _tolerance(pts)[:, None, None]
        dist2 = ((pts[:, :, None] - pts[:, None, :]) ** 2).sum(-1)  # (M, P, P)
        same = dist2 <= tol
        earlier = torch.ones(p, p, dtype=torch.bool, device=pts.device).tril(-1)
        duplicate = (same & earlier).any(dim=2)  # an identical point comes earlier
        # cross[m, i, j, k] = cross(p_i, p_j, p_k)
        cross = _cross(pts[:, :, None, None], pts[:, None, :, None], pts[:, None, None, :])
        left = (cross >= -tol[..., None]).all(dim=3)  # (M, P, P)
        edge = left & ~same
        on_hull = edge.any(dim=2) & ~duplicate
        first = torch.zeros_like(on_hull)
        first[:, 0] = True
        on_hull = torch.where(on_hull.any(dim=1, keepdim=True), on_hull, first)
    return sort_vertices(points, on_hull)


def _inside_convex(points: Tensor, polygon: Tensor, tol: Tensor) -> Tensor:
    """``(M, A)`` mask of points ``(M, A, 2)`` inside (or on) CCW convex ``polygon (M, B, 2)``."""
    a = polygon[:, None, :]
    b = polygon.roll(-1, dims=1)[:, None, :]
    c = _cross(a, b, points[:, :, None])  # (M, A, B)
    return (c >= -tol[:, None, None]).all(dim=2)


def _edge_crossings(poly1: Tensor, poly2: Tensor, tol: Tensor) -> tuple[Tensor, Tensor]:
    """Crossing points of every edge of ``poly1 (M, A, 2)`` with every edge of ``poly2``.

    Parallel (and zero-length) edges do not cross. Returns ``(points (M, A*B, 2), valid)``.
    """
    p1, p2 = poly1[:, :, None], poly1.roll(-1, dims=1)[:, :, None]
    q1, q2 = poly2[:, None], poly2.roll(-1, dims=1)[:, None]
    d1, d2 = p2 - p1, q2 - q1
    den = d1[..., 0] * d2[..., 1] - d1[..., 1] * d2[..., 0]  # (M, A, B)
    diff = q1 - p1
    num_t = diff[..., 0] * d2[..., 1] - diff[..., 1] * d2[..., 0]
    num_u = diff[..., 0] * d1[..., 1] - diff[..., 1] * d1[..., 0]
    parallel = den.detach().abs() <= tol[:, None, None]
    safe = torch.where(parallel, torch.ones_like(den), den)
    t, u = num_t / safe, num_u / safe
    eps = 1e-9
    valid = ~parallel & (t >= -eps) & (t <= 1 + eps) & (u >= -eps) & (u <= 1 + eps)
    pts = p1 + t.unsqueeze(-1) * d1
    m = poly1.shape[0]
    return pts.reshape(m, -1, 2), valid.reshape(m, -1)


def convex_intersection_area(poly1: Tensor, poly2: Tensor) -> Tensor:
    """Area of the intersection of two CCW convex polygons (sorted and padded, as above).

    Args:
        poly1: ``(M, A, 2)``.
        poly2: ``(M, B, 2)``.

    Returns:
        ``(M,)`` areas, differentiable with respect to the vertex coordinates.
    """
    # area is translation-invariant: work around poly1's centre so tolerances (and float
    # rounding) follow the size of the shapes, not their distance from the image origin
    origin = poly1.detach().mean(dim=1, keepdim=True)
    poly1, poly2 = poly1 - origin, poly2 - origin
    tol = torch.maximum(_tolerance(poly1), _tolerance(poly2))
    in2 = _inside_convex(poly1, poly2, tol)
    in1 = _inside_convex(poly2, poly1, tol)
    cross_pts, cross_valid = _edge_crossings(poly1, poly2, tol)
    cand = torch.cat([poly1, poly2, cross_pts], dim=1)
    valid = torch.cat([in2, in1, cross_valid], dim=1)
    inter, _ = sort_vertices(cand, valid)
    area = polygon_area(inter)
    # a zero-area polygon has zero-length or back-and-forth edges that every point passes
    # the inside test of; its intersection is empty by definition
    flat = (polygon_area(poly1.detach()) <= tol) | (polygon_area(poly2.detach()) <= tol)
    return torch.where(flat, torch.zeros_like(area), area)


def _safe_ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` with 0 where ``den`` is 0 (the kernels give NaN there)."""
    zero = den <= 0
    safe = torch.where(zero, torch.ones_like(den), den)
    return torch.where(zero, torch.zeros_like(num), num / safe)


def _check_shape(name: str, tensor: Tensor, width: int) -> None:
    if tensor.dim() != 2 or tensor.shape[1] != width:
        raise ValueError(f'{name} must have shape (N, {width}), got {tuple(tensor.shape)}')


def convex_iou(pointsets: Tensor, polygons: Tensor) -> Tensor:
    """IoU of the convex hull of each 9-point set with each quadrilateral.

    Args:
        pointsets: ``(N, 18)`` as ``(x1, y1, ..., x9, y9)``.
        polygons: ``(K, 8)`` convex quadrilaterals ``(x1, y1, ..., x4, y4)``.

    Returns:
        ``(N, K)`` IoUs in the dtype of ``pointsets``.
    """
    _check_shape('pointsets', pointsets, 18)
    _check_shape('polygons', polygons, 8)
    n, k = pointsets.shape[0], polygons.shape[0]
    out = pointsets.new_zeros((n, k))
    if n == 0 or k == 0:
        return out
    with torch.no_grad():
        hull, _ = convex_hull(pointsets.double().reshape(n, 9, 2))
        quad, _ = convex_hull(polygons.double().reshape(k, 4, 2))
        area_h, area_q = polygon_area(hull), polygon_area(quad)
        # only pairs whose bounding boxes overlap can have a non-zero IoU
        lo_h, hi_h = hull.amin(dim=1), hull.amax(dim=1)
        lo_q, hi_q = quad.amin(dim=1), quad.amax(dim=1)
        touch = ((lo_h[:, None] <= hi_q[None]) & (lo_q[None] <= hi_h[:, None])).all(dim=-1)
        rows, cols = touch.nonzero(as_tuple=True)
        for start in range(0, rows.numel(), _PAIR_CHUNK):
            r, c = rows[start:start + _PAIR_CHUNK], cols[start:start + _PAIR_CHUNK]
            inter = convex_intersection_area(hull[r], quad[c])
            union = area_h[r] + area_q[c] - inter
            out[r, c] = _safe_ratio(inter, union).to(out.dtype)
    return out


def _convex_giou_value(pointsets: Tensor, polygons: Tensor) -> Tensor:
    """Differentiable GIoU of hull(points) and quad, row-aligned, in the input dtype."""
    n = pointsets.shape[0]
    hull, _ = convex_hull(pointsets.reshape(n, 9, 2))
    quad, _ = convex_hull(polygons.reshape(n, 4, 2))
    inter = convex_intersection_area(hull, quad)
    area_h, area_q = polygon_area(hull), polygon_area(quad)
    union = area_h + area_q - inter
    enclose, _ = convex_hull(torch.cat([hull, quad], dim=1))
    area_c = polygon_area(enclose)
    return _safe_ratio(inter, union) - _safe_ratio(area_c - union, area_c)


def convex_giou(pointsets: Tensor, polygons: Tensor) -> tuple[Tensor, Tensor]:
    """Convex GIoU of row-aligned point sets and quadrilaterals, and its gradient.

    As mmcv's op: ``giou = iou - (C - U) / C`` with ``C`` the area of the convex hull of both
    shapes; the gradient ``d giou / d pointsets`` (zero for points inside the hull) is what
    ``ConvexGIoULoss`` back-propagates.

    Args:
        pointsets: ``(N, 18)``.
        polygons: ``(N, 8)``.

    Returns:
        ``(giou (N,), grad (N, 18))`` in the dtype of ``pointsets``.
    """
    _check_shape('pointsets', pointsets, 18)
    _check_shape('polygons', polygons, 8)
    if pointsets.shape[0] != polygons.shape[0]:
        raise ValueError('convex_giou pairs rows: pointsets and polygons need the same N, got '
                         f'{pointsets.shape[0]} and {polygons.shape[0]}')
    if pointsets.shape[0] == 0:
        return pointsets.new_zeros(0), pointsets.new_zeros((0, 18))
    with torch.enable_grad():
        pts = pointsets.detach().double().requires_grad_(True)
        giou = _convex_giou_value(pts, polygons.detach().double())
        grad, = torch.autograd.grad(giou.sum(), pts)
    return giou.detach().to(pointsets.dtype), grad.to(pointsets.dtype)


def min_area_polygons(pointsets: Tensor) -> Tensor:
    """Minimum-area rectangle around each 9-point set, as mmcv's ``min_area_polygons``.

    The candidate orientations are the hull edges' angles folded into ``[0, pi/2)``, visited
    counter-clockwise from the lowest (then leftmost) hull vertex; the first of equal areas
    wins. Corners are returned in the kernel's order: (xmax, ymin), (xmin, ymin), (xmin, ymax),
    (xmax, ymax) of the rotated frame, mapped back.

    Args:
        pointsets: ``(N, 18)``.

    Returns:
        ``(N, 8)`` rectangles in the dtype of ``pointsets``.
    """
    _check_shape('pointsets', pointsets, 18)
    n = pointsets.shape[0]
    if n == 0:
        return pointsets.new_zeros((0, 8))
    with torch.no_grad():
        hull, count = convex_hull(pointsets.double().reshape(n, 9, 2))
        # start at the lowest, then leftmost, vertex as the kernel's Jarvis march does
        rank = torch.arange(9, device=hull.device).expand(n, 9)
        valid = rank < count[:, None]
        key = torch.where(valid, hull[..., 1], torch.full_like(hull[..., 1], math.inf))
        low = key == key.min(dim=1, keepdim=True).values
        xkey = torch.where(low, hull[..., 0], torch.full_like(hull[..., 0], math.inf))
        start = xkey.argmin(dim=1)
        idx = torch.where(valid, (rank + start[:, None]) % count.clamp(min=1)[:, None],
                          start[:, None].expand(n, 9))
        hull = hull.gather(1, idx.unsqueeze(-1).expand(-1, -1, 2))
        edges = hull.roll(-1, dims=1) - hull
        angle = torch.atan2(edges[..., 1], edges[..., 0])
        quarter = math.pi / 2
        folded = torch.where(angle >= 0, torch.fmod(angle, quarter),
                             angle - torch.trunc(angle / quarter - 1) * quarter)
        real_edge = valid & (edges.abs().sum(-1) > 0)
        cos, sin = folded.cos(), folded.sin()  # (N, E)
        # rotated frame: x' = cos x + sin y, y' = -sin x + cos y
        px, py = hull[..., 0][:, None, :], hull[..., 1][:, None, :]  # (N, 1, P)
        rx = cos[..., None] * px + sin[..., None] * py
        ry = -sin[..., None] * px + cos[..., None] * py
        xmin, xmax = rx.amin(-1), rx.amax(-1)
        ymin, ymax = ry.amin(-1), ry.amax(-1)
        area = (xmax - xmin) * (ymax - ymin)
        area = torch.where(real_edge, area, torch.full_like(area, math.inf))
        best = area.argmin(dim=1, keepdim=True)
        # a hull of one point (no real edge) gets angle 0, as the kernel does
        has_edge = real_edge.any(1, keepdim=True)
        c = torch.where(has_edge, cos.gather(1, best), torch.ones_like(cos[:, :1]))
        s = torch.where(has_edge, sin.gather(1, best), torch.zeros_like(sin[:, :1]))
        x0, x1 = xmin.gather(1, best), xmax.gather(1, best)
        y0, y1 = ymin.gather(1, best), ymax.gather(1, best)
        corners_x = torch.cat([x1, x0, x0, x1], dim=1)
        corners_y = torch.cat([y0, y0, y1, y1], dim=1)
        out_x = corners_x * c - corners_y * s
        out_y = corners_x * s + corners_y * c
        out = torch.stack([out_x, out_y], dim=-1).reshape(n, 8)
    return out.to(pointsets.dtype)


def points_in_polygons(points: Tensor, polygons: Tensor) -> Tensor:
    """1.0 where a point is inside a quadrilateral, else 0.0, by the kernel's crossing count.

    The kernel walks edges ``(v0, v3), (v1, v0), (v2, v1), (v3, v2)`` and stops early when the
    point is a vertex or lies on an edge, keeping the crossings counted so far; this is
    reproduced step by step, in float32 as the kernel computes.

    Args:
        points: ``(N, 2)``.
        polygons: ``(K, 8)``.

    Returns:
        ``(N, K)`` float32 tensor of 1.0 / 0.0.
    """
    _check_shape('points', points, 2)
    _check_shape('polygons', polygons, 8)
    px = points[:, 0].float()[:, None]
    py = points[:, 1].float()[:, None]
    poly = polygons.float().reshape(-1, 4, 2)
    n, k = points.shape[0], polygons.shape[0]
    crossings = torch.zeros((n, k), dtype=torch.int64, device=points.device)
    stopped = torch.zeros((n, k), dtype=torch.bool, device=points.device)
    for i, j in ((0, 3), (1, 0), (2, 1), (3, 2)):
        sx, sy = poly[None, :, i, 0], poly[None, :, i, 1]
        tx, ty = poly[None, :, j, 0], poly[None, :, j, 1]
        skip = (py < torch.minimum(sy, ty)) | (py > torch.maximum(sy, ty))
        at_vertex = ((sx == px) & (sy == py)) | ((tx == px) & (ty == py))
        spans = ((sy < py) & (ty >= py)) | ((sy >= py) & (ty < py))
        dy = torch.where(ty == sy, torch.ones_like(ty), ty - sy)
        x = sx + (py - sy) * (tx - sx) / dy
        active = ~stopped & ~skip
        stopped = stopped | (active & at_vertex) | (active & ~at_vertex & spans & (x == px))
        counted = active & ~at_vertex & spans & (x > px)
        crossings = crossings + counted.long()
    return (crossings % 2 == 1).float()


def box2corners(boxes: Tensor) -> Tensor:
    """Corners ``(..., 4, 2)`` of ``(..., 5)`` boxes ``(cx, cy, w, h, angle)``.

    Same corner order and angle sense as mmcv's ``diff_iou_rotated.box2corners``:
    local corners (w/2, h/2), (-w/2, h/2), (-w/2, -h/2), (w/2, -h/2) rotated by
    ``x' = x cos a - y sin a``, ``y' = x sin a + y cos a``.
    """
    cx, cy, w, h, a = boxes.unbind(-1)
    sx = boxes.new_tensor([0.5, -0.5, -0.5, 0.5])
    sy = boxes.new_tensor([0.5, 0.5, -0.5, -0.5])
    lx, ly = w[..., None] * sx, h[..., None] * sy
    cos, sin = a.cos()[..., None], a.sin()[..., None]
    x = lx * cos - ly * sin + cx[..., None]
    y = lx * sin + ly * cos + cy[..., None]
    return torch.stack([x, y], dim=-1)


def diff_iou_rotated_2d(box1: Tensor, box2: Tensor) -> Tensor:
    """Differentiable IoU of row-aligned rotated boxes, as mmcv's ``diff_iou_rotated_2d``.

    Intersection = polygon of the corners of each box inside the other and the crossings of
    their edges, sorted by angle with :func:`sort_vertices` (torch in place of the CUDA sort).

    Args:
        box1: ``(B, N, 5)`` boxes ``(cx, cy, w, h, angle)``.
        box2: ``(B, N, 5)``.

    Returns:
        ``(B, N)`` IoUs; gradients flow to both inputs.
    """
    if box1.dim() != 3 or box1.shape[-1] != 5 or box1.shape != box2.shape:
        raise ValueError('diff_iou_rotated_2d takes two (B, N, 5) tensors of the same shape, got '
                         f'{tuple(box1.shape)} and {tuple(box2.shape)}')
    b, n, _ = box1.shape
    c1 = box2corners(box1).reshape(b * n, 4, 2)
    c2 = box2corners(box2).reshape(b * n, 4, 2)
    # orient both counter-clockwise (negative widths/heights or mirrored frames flip them)
    c1 = _make_ccw(c1)
    c2 = _make_ccw(c2)
    inter = convex_intersection_area(c1, c2).view(b, n)
    area1 = box1[..., 2] * box1[..., 3]
    area2 = box2[..., 2] * box2[..., 3]
    return inter / (area1 + area2 - inter)


def _make_ccw(poly: Tensor) -> Tensor:
    """Reverse the vertex order of clockwise rows of ``(M, P, 2)`` polygons."""
    nxt = poly.roll(-1, dims=1)
    signed = (poly[..., 0] * nxt[..., 1] - poly[..., 1] * nxt[..., 0]).sum(dim=1)
    return torch.where((signed < 0)[:, None, None], poly.flip(1), poly)
