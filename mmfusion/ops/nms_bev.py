"""Device-dispatching BEV NMS: ``nms_bev`` (rotated boxes) and ``nms_normal_bev`` (axis-aligned).

Why this file exists
--------------------
The historical mmcv BEV NMS (``mmcv.ops.iou3d`` with the ``iou3d_nms3d_forward`` /
``iou3d_nms3d_normal_forward`` kernels) has CUDA kernels only in mmcv 2.1.0, and the stack's
design notes list it among the ops without a CPU path. mmdet3d 1.4.0's heads call
``nms_bev``/``nms_normal_bev`` from ``mmdet3d.models.layers.box3d_nms`` (``box3d_multiclass_nms``,
CenterPoint, PartA2, PointRCNN, PV-RCNN, test-time augmentation). This module provides drop-in
replacements with the same signatures and results that run on any device: on CUDA they call mmcv's
original kernels (captured when this module is imported, so rebinding the mmdet3d/mmcv names to
these functions does not recurse); on every other device a pure-PyTorch implementation runs.

Note (checked against the sources): in mmcv 2.1.0 ``mmcv/ops/iou3d.py`` and in mmdet3d 1.4.0
``mmdet3d/models/layers/box3d_nms.py`` both ``nms_bev`` functions are already thin wrappers that
convert the boxes and call ``mmcv.ops.nms_rotated``; ``nms_normal_bev`` calls ``mmcv.ops.nms``.
Those two mmcv ops do have CPU kernels, so the 5-column functions themselves work on CPU once mmcv
imports; only the 7-column ``nms3d``/``nms3d_normal``/``boxes_overlap_bev``/``boxes_iou3d`` are
CUDA-only. The functions here reproduce the wrappers' semantics exactly, without depending on
mmcv on CPU.

Semantics (matched to the sources above and ``mmcv/ops/csrc/common/box_iou_rotated_utils.hpp``,
``mmcv/ops/csrc/pytorch/cpu/nms_rotated.cpp``, ``mmcv/ops/csrc/common/cuda/nms_rotated_cuda.cuh``,
``mmcv/ops/csrc/pytorch/cpu/nms.cpp``, ``mmcv/ops/csrc/common/cuda/nms_cuda_kernel.cuh``)
-------------------------------------------------------------------------------------------------
Shapes: N boxes; ``boxes`` (N, 5) as ``[x1, y1, x2, y2, ry]`` (what mmdet3d's ``xywhr2xyxyr``
produces from ``boxes.bev``), ``scores`` (N,). Result: int64 indices into the input, ordered by
descending score (``scores.sort(0, descending=True)``; ties in the order that sort gives).

``nms_bev(boxes, scores, thresh, pre_max_size=None, post_max_size=None)``:

1. ``order = scores.sort(0, descending=True)[1]``; ``order = order[:pre_max_size]`` if given.
2. Boxes are converted to ``[xc, yc, w, h, ry]`` = ``[(x1+x2)/2, (y1+y2)/2, x2-x1, y2-y1, ry]``
   (mmcv's ``_xyxyr2xywhr``), i.e. ``w`` is the extent along x and ``h`` along y at ``ry = 0``.
3. The rectangle of ``[xc, yc, w, h, a]`` has corners ``(xc, yc) + R(a) (+-w/2, +-h/2)`` with
   ``R(a) = [[cos a, -sin a], [sin a, cos a]]`` (mmcv ``get_rotated_vertices``): ``a`` in radians,
   positive from +x towards +y. mmcv calls this "clockwise" because it draws y pointing down; in the
   LiDAR BEV frame of mmdet3d (x forward, y left) it is the usual counter-clockwise yaw, the same
   convention as ``LiDARInstance3DBoxes.bev``.
4. IoU = exact area of the intersection of the two rotated rectangles / (w1*h1 + w2*h2 - inter),
   and 0 when ``w*h < 1e-14`` for either box (mmcv ``single_box_iou_rotated``).
5. Greedy NMS in score order: a box is dropped when its IoU with an already kept box is
   ``> thresh`` (mmcv's CUDA kernel; mmcv's CPU ``nms_rotated`` kernel uses ``>=``, which differs
   only when an IoU equals ``thresh`` exactly, e.g. ``thresh=0`` and disjoint boxes).
6. Kept indices mapped back through ``order`` and truncated to ``post_max_size`` if given.

``nms_normal_bev(boxes, scores, thresh)``: the rotation column is ignored; axis-aligned IoU of
``[x1, y1, x2, y2]`` with widths ``x2 - x1`` (mmcv ``nms`` with ``offset=0``); a box is dropped
when its IoU with a kept box is ``> thresh`` (both mmcv kernels).

PyTorch implementation: IoUs are computed in float64 (mmcv's kernels use the input dtype, float32
in practice), so an IoU within ~1e-6 of ``thresh`` may be decided differently. Rotated
intersections are found as in mmcv: edge-edge crossings plus corners of one box inside the other,
ordered by angle around their mean and summed with the shoelace formula (vectorised over pairs; only
pairs whose axis-aligned bounding boxes overlap are evaluated, exact for ``thresh >= 0``).

Deviation: for empty input (or ``pre_max_size=0``) both functions return an empty int64 tensor of
shape (0,); mmcv 2.1.0's ``iou3d.nms_bev`` returns a (1, 0) tensor there (``order[None]``).

Errors: ``ValueError`` when ``boxes`` is not (N, 5) or ``scores`` not (N,); ``RuntimeError`` for
CUDA input when mmcv's compiled ops could not be imported.
"""
from typing import List, Optional

import torch
from torch import Tensor

__all__ = ['nms_bev', 'nms_normal_bev']

# The original mmcv kernels' Python entry points, captured at import time. The lead rebinds the
# ``nms_bev``/``nms_normal_bev`` names only, never ``nms_rotated``/``nms``, so no recursion.
try:
    from mmcv.ops.nms import nms as _MMCV_NMS
    from mmcv.ops.nms import nms_rotated as _MMCV_NMS_ROTATED
    _MMCV_IMPORT_ERROR = None
except Exception as err:  # ImportError, or an OSError/RuntimeError while loading _ext
    _MMCV_NMS = None
    _MMCV_NMS_ROTATED = None
    _MMCV_IMPORT_ERROR = err

# Pairs handled per vectorised step (bounds the temporary memory of the IoU computations).
_PAIR_CHUNK = 1 << 16
_MATRIX_CHUNK = 1 << 22
_REL_TOL = 1e-9


def _check_inputs(name: str, boxes: Tensor, scores: Tensor) -> None:
    if not isinstance(boxes, Tensor) or not isinstance(scores, Tensor):
        raise ValueError(f'{name}: boxes and scores must be torch.Tensor, got '
                         f'{type(boxes).__name__} and {type(scores).__name__}')
    if boxes.dim() != 2 or boxes.size(1) != 5:
        raise ValueError(f'{name}: boxes must have shape (N, 5) as [x1, y1, x2, y2, ry], got '
                         f'{tuple(boxes.shape)}')
    if scores.dim() != 1 or scores.size(0) != boxes.size(0):
        raise ValueError(f'{name}: scores must have shape (N,) = ({boxes.size(0)},), got '
                         f'{tuple(scores.shape)}')


def _require_mmcv(name: str) -> None:
    if _MMCV_NMS_ROTATED is None:
        raise RuntimeError(f'{name}: CUDA input needs mmcv\'s compiled nms ops (mmcv.ops.nms), '
                           f'which failed to import: {_MMCV_IMPORT_ERROR!r}. Install mmcv 2.1.0 '
                           'built with CUDA ops, or pass CPU tensors.')


def _xyxyr_to_xywhr(boxes: Tensor) -> Tensor:
    """[x1, y1, x2, y2, ry] -> [xc, yc, w, h, ry] (mmcv ``iou3d._xyxyr2xywhr``)."""
    return torch.stack(((boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2,
                        boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1], boxes[:, 4]),
                       dim=-1)


def _empty_keep(ref: Tensor) -> Tensor:
    return torch.zeros((0, ), dtype=torch.long, device=ref.device)


def _cross(a: Tensor, b: Tensor) -> Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _corners(center: Tensor, w: Tensor, h: Tensor, angle: Tensor) -> Tensor:
    """(P, 4, 2) corners ``center + R(angle) (+-w/2, +-h/2)``, in cyclic order."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    dx = torch.stack((-w, w, w, -w), dim=1) / 2
    dy = torch.stack((-h, -h, h, h), dim=1) / 2
    x = center[:, None, 0] + dx * cos[:, None] - dy * sin[:, None]
    y = center[:, None, 1] + dx * sin[:, None] + dy * cos[:, None]
    return torch.stack((x, y), dim=-1)


def _inside(points: Tensor, center: Tensor, w: Tensor, h: Tensor, angle: Tensor) -> Tensor:
    """(P, K) mask: points (P, K, 2) inside (or on) the rectangles (P,), with a tiny tolerance."""
    cos, sin = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
    d = points - center[:, None, :]
    local_x = d[..., 0] * cos + d[..., 1] * sin
    local_y = -d[..., 0] * sin + d[..., 1] * cos
    half_w, half_h = w.abs()[:, None] / 2, h.abs()[:, None] / 2
    tol = _REL_TOL * (half_w + half_h)
    return (local_x.abs() <= half_w + tol) & (local_y.abs() <= half_h + tol)


def _rotated_pair_iou(b1: Tensor, b2: Tensor) -> Tensor:
    """IoU of aligned pairs of rotated boxes (P, 5) ``[xc, yc, w, h, a]``, float64, -> (P,)."""
    if b1.size(0) == 0:
        return b1.new_zeros((0, ))
    # Work relative to each pair's midpoint, as mmcv does, for precision.
    shift = (b1[:, :2] + b2[:, :2]) / 2
    c1, c2 = b1[:, :2] - shift, b2[:, :2] - shift
    w1, h1, a1 = b1[:, 2], b1[:, 3], b1[:, 4]
    w2, h2, a2 = b2[:, 2], b2[:, 3], b2[:, 4]
    p1, p2 = _corners(c1, w1, h1, a1), _corners(c2, w2, h2, a2)
    e1, e2 = p1.roll(-1, dims=1) - p1, p2.roll(-1, dims=1) - p2

    # Edge i of box 1 against edge j of box 2: p1_i + t e1_i = p2_j + u e2_j, t, u in [0, 1].
    start1, edge1 = p1[:, :, None, :], e1[:, :, None, :]
    start2, edge2 = p2[:, None, :, :], e2[:, None, :, :]
    den = _cross(edge1, edge2)
    parallel = den.abs() <= 1e-12 * edge1.norm(dim=-1) * edge2.norm(dim=-1)
    safe_den = torch.where(parallel, torch.ones_like(den), den)
    diff = start2 - start1
    t = _cross(diff, edge2) / safe_den
    u = _cross(diff, edge1) / safe_den
    tol = _REL_TOL
    crossing = (~parallel) & (t >= -tol) & (t <= 1 + tol) & (u >= -tol) & (u <= 1 + tol)
    crossing_pts = start1 + t.unsqueeze(-1) * edge1

    num = b1.size(0)
    points = torch.cat((crossing_pts.reshape(num, 16, 2), p1, p2), dim=1)
    valid = torch.cat((crossing.reshape(num, 16), _inside(p1, c2, w2, h2, a2),
                       _inside(p2, c1, w1, h1, a1)), dim=1)

    # The valid points all lie on the boundary of the convex intersection polygon: order them by
    # angle around their mean (an interior point) and apply the shoelace formula. Invalid slots
    # are replaced by the first ordered point, so they add zero-length edges only.
    count = valid.sum(dim=1)
    weights = valid.to(points.dtype).unsqueeze(-1)
    mean = (points * weights).sum(dim=1) / count.clamp(min=1).to(points.dtype).unsqueeze(-1)
    rel = points - mean[:, None, :]
    angles = torch.atan2(rel[..., 1], rel[..., 0])
    angles = torch.where(valid, angles, torch.full_like(angles, float('inf')))
    sort_idx = angles.argsort(dim=1)
    rel = rel.gather(1, sort_idx.unsqueeze(-1).expand(-1, -1, 2))
    valid = valid.gather(1, sort_idx)
    rel = torch.where(valid.unsqueeze(-1), rel, rel[:, :1, :].expand_as(rel))
    inter = _cross(rel, rel.roll(-1, dims=1)).sum(dim=1).abs() / 2
    inter = torch.where(count >= 3, inter, torch.zeros_like(inter))

    area1, area2 = w1 * h1, w2 * h2
    degenerate = (area1 < 1e-14) | (area2 < 1e-14)
    union = torch.where(degenerate, torch.ones_like(area1), area1 + area2 - inter)
    return torch.where(degenerate, torch.zeros_like(inter), inter / union)


def _rotated_suppression_pairs(boxes: Tensor, thresh: float):
    """Pairs (i, j), i < j positions in score order, of boxes (n, 5) xywhr with IoU > thresh.

    Pairs whose axis-aligned bounding boxes do not overlap have IoU 0 and are skipped, which is
    exact for ``thresh >= 0``. Returned with ``i`` non-decreasing.
    """
    num = boxes.size(0)
    cos, sin = torch.cos(boxes[:, 4]).abs(), torch.sin(boxes[:, 4]).abs()
    half_w, half_h = boxes[:, 2].abs() / 2, boxes[:, 3].abs() / 2
    ext_x = cos * half_w + sin * half_h
    ext_y = sin * half_w + cos * half_h
    margin = 1e-7 * (half_w + half_h) + 1e-12
    lo_x, hi_x = boxes[:, 0] - ext_x - margin, boxes[:, 0] + ext_x + margin
    lo_y, hi_y = boxes[:, 1] - ext_y - margin, boxes[:, 1] + ext_y + margin
    col = torch.arange(num, device=boxes.device)
    rows_per_chunk = max(1, _MATRIX_CHUNK // max(num, 1))
    src, dst = [], []
    for start in range(0, num, rows_per_chunk):
        stop = min(num, start + rows_per_chunk)
        row = col[start:stop, None]
        cand = ((lo_x[None, :] < hi_x[start:stop, None]) & (lo_x[start:stop, None] < hi_x[None, :])
                & (lo_y[None, :] < hi_y[start:stop, None])
                & (lo_y[start:stop, None] < hi_y[None, :]) & (col[None, :] > row))
        ii, jj = cand.nonzero(as_tuple=True)
        ii = ii + start
        for p in range(0, ii.numel(), _PAIR_CHUNK):
            pi, pj = ii[p:p + _PAIR_CHUNK], jj[p:p + _PAIR_CHUNK]
            iou = _rotated_pair_iou(boxes[pi], boxes[pj])
            hit = iou > thresh
            src.append(pi[hit])
            dst.append(pj[hit])
    if not src:
        return col[:0], col[:0]
    return torch.cat(src), torch.cat(dst)


def _aligned_suppression_pairs(boxes: Tensor, thresh: float):
    """Pairs (i, j), i < j, of axis-aligned boxes (n, 4) [x1, y1, x2, y2] with IoU > thresh."""
    num = boxes.size(0)
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    area = (x2 - x1) * (y2 - y1)
    col = torch.arange(num, device=boxes.device)
    rows_per_chunk = max(1, _MATRIX_CHUNK // max(num, 1))
    src, dst = [], []
    for start in range(0, num, rows_per_chunk):
        stop = min(num, start + rows_per_chunk)
        sl = slice(start, stop)
        iw = (torch.minimum(x2[sl, None], x2[None, :]) -
              torch.maximum(x1[sl, None], x1[None, :])).clamp(min=0)
        ih = (torch.minimum(y2[sl, None], y2[None, :]) -
              torch.maximum(y1[sl, None], y1[None, :])).clamp(min=0)
        inter = iw * ih
        iou = inter / (area[sl, None] + area[None, :] - inter)
        hit = (iou > thresh) & (col[None, :] > col[sl, None])
        ii, jj = hit.nonzero(as_tuple=True)
        src.append(ii + start)
        dst.append(jj)
    if not src:
        return col[:0], col[:0]
    return torch.cat(src), torch.cat(dst)


def _greedy_keep(num: int, src: Tensor, dst: Tensor, limit: Optional[int] = None) -> List[int]:
    """Greedy NMS over positions 0..num-1 (score order) given suppression pairs (src < dst)."""
    counts = torch.bincount(src, minlength=num)
    ends = counts.cumsum(0).tolist()
    targets = dst.tolist()
    suppressed = bytearray(num)
    keep: List[int] = []
    begin = 0
    for i in range(num):
        end = ends[i]
        if not suppressed[i]:
            keep.append(i)
            if limit is not None and len(keep) >= limit:
                break
            for j in targets[begin:end]:
                suppressed[j] = 1
        begin = end
    return keep


def _nms_bev_torch(boxes: Tensor, scores: Tensor, thresh: float, pre_max_size: Optional[int],
                   post_max_size: Optional[int]) -> Tensor:
    order = scores.sort(0, descending=True)[1]
    if pre_max_size is not None:
        order = order[:pre_max_size]
    num = order.numel()
    if num == 0:
        return _empty_keep(boxes)
    with torch.no_grad():
        if thresh < 0:
            # Every IoU is >= 0 > thresh: the top box suppresses all others.
            positions = [0]
        else:
            sorted_boxes = _xyxyr_to_xywhr(boxes.detach()[order].to(torch.float64))
            src, dst = _rotated_suppression_pairs(sorted_boxes, thresh)
            limit = post_max_size if post_max_size is not None and post_max_size >= 0 else None
            positions = _greedy_keep(num, src.cpu(), dst.cpu(), limit)
        keep = order[torch.tensor(positions, dtype=torch.long, device=order.device)]
    if post_max_size is not None:
        keep = keep[:post_max_size]
    return keep


def _nms_normal_bev_torch(boxes: Tensor, scores: Tensor, thresh: float) -> Tensor:
    order = scores.sort(0, descending=True)[1]
    num = order.numel()
    if num == 0:
        return _empty_keep(boxes)
    with torch.no_grad():
        sorted_boxes = boxes.detach()[order, :4].to(torch.float64)
        src, dst = _aligned_suppression_pairs(sorted_boxes, thresh)
        positions = _greedy_keep(num, src.cpu(), dst.cpu())
        return order[torch.tensor(positions, dtype=torch.long, device=order.device)]


def nms_bev(boxes: Tensor,
            scores: Tensor,
            thresh: float,
            pre_max_size: Optional[int] = None,
            post_max_size: Optional[int] = None) -> Tensor:
    """Rotated BEV NMS (same signature and result as mmcv 2.1.0 / mmdet3d 1.4.0 ``nms_bev``).

    Args:
        boxes (Tensor): (N, 5) boxes ``[x1, y1, x2, y2, ry]``; ``ry`` in radians, rotating the
            box about its centre from +x towards +y (see the module docstring).
        scores (Tensor): (N,) scores.
        thresh (float): IoU threshold; a box whose IoU with a kept box is ``> thresh`` is dropped.
        pre_max_size (int, optional): keep only this many top-scoring boxes before NMS.
        post_max_size (int, optional): return at most this many indices.

    Returns:
        Tensor: int64 indices into ``boxes`` of the kept boxes, by descending score.

    Dispatch: CUDA input runs mmcv's ``nms_rotated`` kernel with mmcv's own conversion
    (``RuntimeError`` if mmcv's extension could not be imported); other devices use PyTorch.

    Raises:
        ValueError: ``boxes`` not (N, 5) or ``scores`` not (N,).
        RuntimeError: CUDA input without a usable mmcv extension.
    """
    _check_inputs('nms_bev', boxes, scores)
    thresh = float(thresh)
    if boxes.device.type != 'cuda':
        return _nms_bev_torch(boxes, scores, thresh, pre_max_size, post_max_size)
    _require_mmcv('nms_bev')
    order = scores.sort(0, descending=True)[1]
    if pre_max_size is not None:
        order = order[:pre_max_size]
    if order.numel() == 0:
        return _empty_keep(boxes)
    keep = _MMCV_NMS_ROTATED(_xyxyr_to_xywhr(boxes[order]).contiguous(), scores[order],
                             thresh)[1]
    keep = order[keep]
    if post_max_size is not None:
        keep = keep[:post_max_size]
    return keep


def nms_normal_bev(boxes: Tensor, scores: Tensor, thresh: float) -> Tensor:
    """Axis-aligned BEV NMS, rotation ignored (mmcv 2.1.0 / mmdet3d 1.4.0 ``nms_normal_bev``).

    Args:
        boxes (Tensor): (N, 5) boxes ``[x1, y1, x2, y2, ry]``; ``ry`` is ignored.
        scores (Tensor): (N,) scores.
        thresh (float): IoU threshold; a box whose IoU with a kept box is ``> thresh`` is dropped.

    Returns:
        Tensor: int64 indices into ``boxes`` of the kept boxes, by descending score.

    Dispatch: CUDA input runs mmcv's ``nms`` (``offset=0``) on ``boxes[:, :4]`` (``RuntimeError``
    if mmcv's extension could not be imported); other devices use PyTorch.

    Raises:
        ValueError: ``boxes`` not (N, 5) or ``scores`` not (N,).
        RuntimeError: CUDA input without a usable mmcv extension.
    """
    _check_inputs('nms_normal_bev', boxes, scores)
    thresh = float(thresh)
    if boxes.device.type != 'cuda':
        return _nms_normal_bev_torch(boxes, scores, thresh)
    _require_mmcv('nms_normal_bev')
    if boxes.size(0) == 0:
        return _empty_keep(boxes)
    return _MMCV_NMS(boxes[:, :-1], scores, thresh)[1]
