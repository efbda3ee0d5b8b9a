"""Exact intersection of rotated rectangles, vectorised over pairs (shared by the BEV ops).

Shapes: P pairs; boxes ``[xc, yc, w, h, a]`` (P, 5): centre, extent along x and y at ``a = 0``,
and the rotation ``a`` in radians, positive from +x towards +y; corners are
``(xc, yc) + R(a) (+-w/2, +-h/2)`` with ``R(a) = [[cos a, -sin a], [sin a, cos a]]`` (mmcv's
``get_rotated_vertices`` in ``box_iou_rotated_utils.hpp``). Areas are in the squared unit of the
coordinates. The algorithm follows mmcv: side-side crossings plus corners of one box inside the
other, ordered by angle around their mean, summed with the shoelace formula.
"""
import torch
from torch import Tensor

# Pairs per vectorised step (bounds temporary memory) and the geometric tolerance.
PAIR_CHUNK = 1 << 16
REL_TOL = 1e-9


def corners(cx: Tensor, cy: Tensor, w: Tensor, h: Tensor, angle: Tensor):
    """Corners ``(cx, cy) + R(angle) (+-w/2, +-h/2)`` of P rectangles: x, y (P, 4), cyclic."""
    cos, sin = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
    dx = (w / 2)[:, None] * w.new_tensor([-1., 1., 1., -1.])
    dy = (h / 2)[:, None] * h.new_tensor([-1., -1., 1., 1.])
    return cx[:, None] + dx * cos - dy * sin, cy[:, None] + dx * sin + dy * cos


def _inside(px: Tensor, py: Tensor, qx: Tensor, qy: Tensor) -> Tensor:
    """(P, K) mask: points (px, py) inside or on the rectangles with corners (qx, qy) (P, 4).

    As mmcv: the projections of ``AP`` on the sides ``AB`` and ``AD`` lie within those sides
    (here with a relative tolerance of ``REL_TOL`` for points on the boundary).
    """
    abx, aby = (qx[:, 1] - qx[:, 0])[:, None], (qy[:, 1] - qy[:, 0])[:, None]
    adx, ady = (qx[:, 3] - qx[:, 0])[:, None], (qy[:, 3] - qy[:, 0])[:, None]
    apx, apy = px - qx[:, :1], py - qy[:, :1]
    along_ab, along_ad = apx * abx + apy * aby, apx * adx + apy * ady
    ab2, ad2 = abx * abx + aby * aby, adx * adx + ady * ady
    tol = REL_TOL
    return ((along_ab >= -tol * ab2) & (along_ab <= (1 + tol) * ab2) & (along_ad >= -tol * ad2)
            & (along_ad <= (1 + tol) * ad2))


def rotated_pair_intersection(b1: Tensor, b2: Tensor) -> Tensor:
    """Exact intersection area of aligned pairs of rotated boxes.

    Args:
        b1, b2: (P, 5) ``[xc, yc, w, h, a]`` (a in radians), float64 recommended.

    Returns:
        Tensor: (P,) intersection areas, in the squared unit of the box coordinates.
    """
    num = b1.size(0)
    if num == 0:
        return b1.new_zeros((0, ))
    if num > PAIR_CHUNK:
        return torch.cat([
            rotated_pair_intersection(b1[k:k + PAIR_CHUNK], b2[k:k + PAIR_CHUNK])
            for k in range(0, num, PAIR_CHUNK)
        ])
    # Work relative to each pair's midpoint, as mmcv does, for precision.
    shift_x, shift_y = (b1[:, 0] + b2[:, 0]) / 2, (b1[:, 1] + b2[:, 1]) / 2
    x1, y1 = corners(b1[:, 0] - shift_x, b1[:, 1] - shift_y, b1[:, 2], b1[:, 3], b1[:, 4])
    x2, y2 = corners(b2[:, 0] - shift_x, b2[:, 1] - shift_y, b2[:, 2], b2[:, 3], b2[:, 4])
    ex1, ey1 = x1.roll(-1, 1) - x1, y1.roll(-1, 1) - y1
    ex2, ey2 = x2.roll(-1, 1) - x2, y2.roll(-1, 1) - y2

    # Side i of box 1 against side j of box 2 (P, 4, 4): p1_i + t e1_i = p2_j + u e2_j with t, u
    # in [0, 1]. Parallel sides give t, u = +-inf or nan, which fail the range test.
    e1x, e1y, e2x, e2y = ex1[:, :, None], ey1[:, :, None], ex2[:, None, :], ey2[:, None, :]
    dx, dy = x2[:, None, :] - x1[:, :, None], y2[:, None, :] - y1[:, :, None]
    den = e1x * e2y - e1y * e2x
    t = (dx * e2y - dy * e2x) / den
    u = (dx * e1y - dy * e1x) / den
    tol = REL_TOL
    crossing = (t >= -tol) & (t <= 1 + tol) & (u >= -tol) & (u <= 1 + tol)
    cross_x, cross_y = x1[:, :, None] + t * e1x, y1[:, :, None] + t * e1y

    # Candidate vertices of the intersection polygon: side crossings and corners of one box
    # inside the other (P, 24).
    px = torch.cat((cross_x.reshape(num, 16), x1, x2), 1)
    py = torch.cat((cross_y.reshape(num, 16), y1, y2), 1)
    valid = torch.cat((crossing.reshape(num, 16), _inside(x1, y1, x2, y2), _inside(x2, y2, x1, y1)),
                      1)
    px, py = torch.where(valid, px, 0.), torch.where(valid, py, 0.)

    # They all lie on the boundary of the convex intersection polygon: order them by angle around
    # their mean (an interior point) and apply the shoelace formula. Invalid slots are replaced by
    # the first ordered point, so they only add zero-length sides.
    count = valid.sum(1)
    denom = count.clamp(min=1).to(px.dtype)
    px, py = px - (px.sum(1) / denom)[:, None], py - (py.sum(1) / denom)[:, None]
    angle = torch.where(valid, torch.atan2(py, px), float('inf'))
    idx = angle.argsort(1)
    px, py, valid = px.gather(1, idx), py.gather(1, idx), valid.gather(1, idx)
    px, py = torch.where(valid, px, px[:, :1]), torch.where(valid, py, py[:, :1])
    inter = (px * py.roll(-1, 1) - py * px.roll(-1, 1)).sum(1).abs() / 2
    inter = torch.where(count >= 3, inter, 0.)

    return inter
