"""Device-dispatching BEV NMS: ``nms_bev`` (rotated boxes) and ``nms_normal_bev`` (axis-aligned).

Why this file exists
--------------------
mmcv 2.1.0's BEV/3D NMS kernels (``iou3d_nms3d_forward``, ``iou3d_nms3d_normal_forward``,
``iou3d_boxes_overlap_bev_forward`` behind ``mmcv.ops.iou3d``) exist for CUDA only. mmdet3d 1.4.0's
heads call ``nms_bev``/``nms_normal_bev`` from ``mmdet3d.models.layers.box3d_nms``
(``box3d_multiclass_nms``, CenterPoint, PartA2, PointRCNN, PV-RCNN, test-time augmentation). This
module provides drop-in replacements with the same signatures and results that run on any device: on
CUDA they call mmcv's original kernels (captured when this module is imported; the captured
``nms_rotated``/``nms`` are not among the rebound names, so rebinding the mmdet3d/mmcv ``nms_bev``
names to these functions does not recurse); on every other device a pure-PyTorch implementation
runs.

Note (checked against the sources): in mmcv 2.1.0 ``mmcv/ops/iou3d.py`` and in mmdet3d 1.4.0
``mmdet3d/models/layers/box3d_nms.py`` the 5-column ``nms_bev`` functions no longer use the iou3d
kernels: they convert the boxes and call ``mmcv.ops.nms_rotated``, and ``nms_normal_bev`` calls
``mmcv.ops.nms``. Those two ops do have CPU kernels, so the stock functions also run on CPU once
mmcv imports (only the 7-column ``nms3d``/``nms3d_normal``/``boxes_overlap_bev``/``boxes_iou3d``
are CUDA-only). This module still gives one device-independent CPU path: it does not need mmcv on
CPU, accepts float64, and uses the CUDA kernels' ``>`` rule (mmcv's CPU ``nms_rotated`` uses
``>=``). Its speed against mmcv's CPU kernel: ``README.md``, "CPU and CUDA".

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
intersections are found as in mmcv: side-side crossings plus corners of one box inside the other,
ordered by angle around their mean and summed with the shoelace formula, vectorised over pairs.
Only pairs that can exceed ``thresh`` are evaluated: the axis-aligned bounding boxes must overlap
(sort-and-sweep) and an upper bound of the IoU (from the bounding-box overlap and the two areas)
must reach ``thresh``; this pruning is exact for ``thresh >= 0``. The greedy pass runs in blocks of
score-ordered boxes and computes a pair's IoU only while its higher-scoring box is still kept.
With ``thresh < 0`` only the top-scoring box is kept (every IoU is >= 0; mmcv would also keep
boxes whose IoU is NaN, i.e. axis-aligned boxes of zero area in ``nms_normal_bev``).

Deviation: for empty input (or ``pre_max_size=0``) both functions return an empty int64 tensor of
shape (0,); mmcv 2.1.0's ``iou3d.nms_bev`` returns a (1, 0) tensor there (``order[None]``).

Errors: ``ValueError`` when ``boxes`` is not (N, 5) or ``scores`` not (N,); ``RuntimeError`` for
CUDA input when mmcv's compiled ops could not be imported.
"""
from typing import List, Optional

import torch
from torch import Tensor

from ._rotated_geometry import PAIR_CHUNK, rotated_pair_intersection

__all__ = ['nms_bev', 'nms_normal_bev']

# The original mmcv kernels' Python entry points, captured at import time.
# ``mmfusion.ops.cpu_fallbacks`` rebinds the ``nms_bev``/``nms_normal_bev`` names only, never
# ``nms_rotated``/``nms``, so calling these never recurses.
try:
    from mmcv.ops.nms import nms as _MMCV_NMS
    from mmcv.ops.nms import nms_rotated as _MMCV_NMS_ROTATED
    _MMCV_IMPORT_ERROR = None
except Exception as err:  # ImportError, or an OSError/RuntimeError while loading _ext
    _MMCV_NMS = None
    _MMCV_NMS_ROTATED = None
    _MMCV_IMPORT_ERROR = err

# Boxes per block of the greedy pass (bounds the temporary memory).
_BLOCK = 256


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


def _rotated_pair_iou(b1: Tensor, b2: Tensor) -> Tensor:
    """IoU of aligned pairs of rotated boxes (P, 5) ``[xc, yc, w, h, a]``, float64, -> (P,)."""
    inter = rotated_pair_intersection(b1, b2)
    area1, area2 = b1[:, 2] * b1[:, 3], b2[:, 2] * b2[:, 3]
    degenerate = (area1 < 1e-14) | (area2 < 1e-14)
    union = torch.where(degenerate, 1., area1 + area2 - inter)
    return torch.where(degenerate, 0., inter / union)


def _aabb_overlap_pairs(lo_x: Tensor, hi_x: Tensor, lo_y: Tensor, hi_y: Tensor):
    """All pairs (i, j), i < j, whose boxes ``[lo_x, hi_x] x [lo_y, hi_y]`` overlap (open test).

    Sort-and-sweep along x (``searchsorted`` over the sorted left edges), then a y test, generated
    in chunks of at most ``PAIR_CHUNK * 64`` x-overlapping pairs. Needs ``hi > lo``.
    """
    num = lo_x.numel()
    lo_sorted, perm = lo_x.sort(stable=True)
    # Boxes after position p in sweep order whose left edge lies before p's right edge.
    end = torch.searchsorted(lo_sorted, hi_x[perm], side='left')
    pos = torch.arange(num, device=lo_x.device)
    counts = (end - pos - 1).clamp(min=0)
    budget = PAIR_CHUNK * 64
    cum = counts.cumsum(0)
    src, dst = [], []
    first = 0
    while first < num:
        # Largest last row such that the chunk holds at most ``budget`` pairs (at least one row).
        base = int(cum[first - 1]) if first > 0 else 0
        last = int(torch.searchsorted(cum, base + budget, side='right'))
        last = min(num, max(last, first + 1))
        rows = pos[first:last]
        rc = counts[first:last]
        total = int(rc.sum())
        if total:
            a = rows.repeat_interleave(rc)
            starts = rc.cumsum(0) - rc
            offset = torch.arange(total, device=lo_x.device) - starts.repeat_interleave(rc)
            i, j = perm[a], perm[a + 1 + offset]
            ok = (lo_y[i] < hi_y[j]) & (lo_y[j] < hi_y[i])
            i, j = i[ok], j[ok]
            src.append(torch.minimum(i, j))
            dst.append(torch.maximum(i, j))
        first = last
    if not src:
        return pos[:0], pos[:0]
    return torch.cat(src), torch.cat(dst)


def _blocked_greedy(num: int, src: Tensor, dst: Tensor, pair_iou, thresh: float,
                    limit: Optional[int] = None) -> List[int]:
    """Greedy NMS over positions 0..num-1 (descending score) with lazily computed IoUs.

    ``(src, dst)`` (src < dst) are the only pairs whose IoU can exceed ``thresh``;
    ``pair_iou(i, j)`` returns their IoUs. Positions are processed in blocks: the IoUs among a
    block's surviving boxes decide the block sequentially, then the block's kept boxes suppress
    later boxes in one vectorised step. IoUs are computed only for pairs whose first box is still
    alive, so a box suppressed early never has its own pairs evaluated.
    """
    if src.numel() == 0:
        return list(range(num if limit is None else min(num, limit)))
    order = src.argsort(stable=True)
    src, dst = src[order], dst[order]
    ptr = [0] + torch.bincount(src, minlength=num).cumsum(0).tolist()
    alive = torch.ones(num, dtype=torch.bool)
    keep: List[int] = []
    for start in range(0, num, _BLOCK):
        stop = min(num, start + _BLOCK)
        ps, pd = src[ptr[start]:ptr[stop]], dst[ptr[start]:ptr[stop]]
        inside = pd < stop
        sel = inside & alive[ps] & alive[pd]
        block_alive = alive[start:stop].tolist()
        if bool(sel.any()):
            ws, wd = ps[sel], pd[sel]
            hit = pair_iou(ws, wd) > thresh
            # Pairs are sorted by their first box, so its fate is final when it is reached.
            for i, j in zip(ws[hit].tolist(), wd[hit].tolist()):
                if block_alive[i - start]:
                    block_alive[j - start] = False
            alive[start:stop] = torch.tensor(block_alive, dtype=torch.bool)
        keep.extend(start + k for k, flag in enumerate(block_alive) if flag)
        if limit is not None and len(keep) >= limit:
            return keep[:limit]
        sel = ~inside
        sel &= alive[ps] & alive[pd]
        if bool(sel.any()):
            ls, ld = ps[sel], pd[sel]
            alive[ld[pair_iou(ls, ld) > thresh]] = False
    return keep


def _nms_bev_torch(boxes: Tensor, scores: Tensor, thresh: float, pre_max_size: Optional[int],
                   post_max_size: Optional[int]) -> Tensor:
    order = scores.sort(0, descending=True)[1]
    if pre_max_size is not None:
        order = order[:pre_max_size]
    num = order.numel()
    if num == 0:
        return _empty_keep(boxes)
    limit = post_max_size if post_max_size is not None and post_max_size >= 0 else None
    with torch.no_grad():
        if thresh < 0:
            # Every IoU is >= 0 > thresh: the top box suppresses all others.
            positions = [0]
        else:
            b = _xyxyr_to_xywhr(boxes.detach()[order].to(device='cpu', dtype=torch.float64))
            cos, sin = torch.cos(b[:, 4]).abs(), torch.sin(b[:, 4]).abs()
            half_w, half_h = b[:, 2].abs() / 2, b[:, 3].abs() / 2
            ext_x = cos * half_w + sin * half_h + 1e-7 * (half_w + half_h) + 1e-12
            ext_y = sin * half_w + cos * half_h + 1e-7 * (half_w + half_h) + 1e-12
            lo_x, hi_x = b[:, 0] - ext_x, b[:, 0] + ext_x
            lo_y, hi_y = b[:, 1] - ext_y, b[:, 1] + ext_y
            src, dst = _aabb_overlap_pairs(lo_x, hi_x, lo_y, hi_y)
            # Upper bound: intersection <= min(bounding-box overlap, area1, area2), and the IoU
            # grows with the intersection. Drop the pairs that cannot exceed ``thresh``.
            area = (b[:, 2] * b[:, 3]).abs()
            inter_ub = ((torch.minimum(hi_x[src], hi_x[dst]) - torch.maximum(lo_x[src], lo_x[dst]))
                        * (torch.minimum(hi_y[src], hi_y[dst]) -
                           torch.maximum(lo_y[src], lo_y[dst])))
            inter_ub = torch.minimum(inter_ub, torch.minimum(area[src], area[dst]))
            bound = inter_ub / (area[src] + area[dst] - inter_ub).clamp(min=1e-300)
            possible = ~(bound < thresh - 1e-9)
            src, dst = src[possible], dst[possible]
            positions = _blocked_greedy(num, src, dst, lambda i, j: _rotated_pair_iou(b[i], b[j]),
                                        thresh, limit)
        keep = order[torch.tensor(positions, dtype=torch.long, device=order.device)]
    if post_max_size is not None:
        keep = keep[:post_max_size]
    return keep


def _aligned_pair_iou(boxes: Tensor, i: Tensor, j: Tensor) -> Tensor:
    """IoU of axis-aligned boxes ``boxes[i]``, ``boxes[j]`` ([x1, y1, x2, y2]), as mmcv ``nms``."""
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    iw = (torch.minimum(x2[i], x2[j]) - torch.maximum(x1[i], x1[j])).clamp(min=0)
    ih = (torch.minimum(y2[i], y2[j]) - torch.maximum(y1[i], y1[j])).clamp(min=0)
    inter = iw * ih
    area = (x2 - x1) * (y2 - y1)
    return inter / (area[i] + area[j] - inter)


def _nms_normal_bev_torch(boxes: Tensor, scores: Tensor, thresh: float) -> Tensor:
    order = scores.sort(0, descending=True)[1]
    num = order.numel()
    if num == 0:
        return _empty_keep(boxes)
    with torch.no_grad():
        if thresh < 0:
            # Every IoU of boxes with positive area is >= 0 > thresh.
            positions = [0]
        else:
            b = boxes.detach()[order, :4].to(device='cpu', dtype=torch.float64)
            # Only overlapping boxes (positive intersection) can have IoU > thresh >= 0.
            src, dst = _aabb_overlap_pairs(torch.minimum(b[:, 0], b[:, 2]),
                                           torch.maximum(b[:, 0], b[:, 2]) + 1e-12,
                                           torch.minimum(b[:, 1], b[:, 3]),
                                           torch.maximum(b[:, 1], b[:, 3]) + 1e-12)
            positions = _blocked_greedy(num, src, dst, lambda i, j: _aligned_pair_iou(b, i, j),
                                        thresh)
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
