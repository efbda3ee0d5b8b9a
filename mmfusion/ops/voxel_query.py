"""Voxel query of Voxel R-CNN: the non-empty voxels around query points, in pure PyTorch.

Paper: J. Deng, S. Shi, P. Li, W. Zhou, Y. Zhang, H. Li, "Voxel R-CNN: Towards High Performance
Voxel-based 3D Object Detection", AAAI 2021, Sec. 3.2 "Voxel RoI pooling" (voxel query: the
neighbouring voxels of a query point are found by index arithmetic on the sparse voxel grid,
not by a ball query over all voxels). The semantics (search order, padding, empty queries)
follow the CUDA kernel of the official code, as used by SSLFusion (github.com/TLDBN/SSLFsion,
``pcdet/ops/pointnet2/pointnet2_stack/src/voxel_query_gpu.cu`` and ``voxel_query_utils.py``),
read to settle the details and not copied.

Why this file exists: mmcv 2.1.0 has no voxel query op (only point ball query, itself CUDA-only),
and OpenPCDet's kernel is a CUDA extension. This one vectorised PyTorch implementation serves
both devices (CPU and CUDA tensors alike, no Python loop over queries), so there is no separate
kernel to dispatch to.

Shape shorthand: Q query points, M non-empty voxels of one sparse scale (whole batch),
S = ``nsample``.

What one call computes, per query q with position p_q (metres) and batch b_q::

    c_q = floor(floor((p_q - range_min) / voxel_size) / stride)     its voxel (x, y, z) index
    for dz in -rz..rz, dy in -ry..ry, dx in -rx..rx   (this order: z outermost, x innermost)
        v = voxel of sample b_q at index c_q + (dx, dy, dz), if non-empty
        keep v if |centre(v) - p_q|^2 <= radius^2 (float32, as the kernel)
    idx[q]   = the first S kept voxels in that order; if fewer than S but at least one, the
               remaining slots repeat the first kept voxel
    empty[q] = no voxel kept; then idx[q] = 0

Implementation (identical results, no dense (B, Z, Y, X) index volume, which at KITTI's input
resolution would be 41 x 1600 x 1408 int32 = 369 MB per sample): voxels are sorted by their
linear key ((b * Z + z) * Y + y) * X + x; for each query and each (dz, dy) row, two
``searchsorted`` calls give the contiguous run of voxels with x in [x - kx, x + kx], already in
the kernel's x order. Offsets whose nearest possible voxel centre lies beyond ``radius`` (the
query lies inside its own voxel, so along each axis the centre of the voxel ``d`` cells away is
at least ``(|d| - 1/2) * size`` away) cannot pass the radius test and are skipped; this only
saves work (exact). Queries are processed in chunks of ``chunk_size`` to bound memory.
"""
import math
from typing import Sequence, Tuple

import torch
from torch import Tensor

__all__ = ['voxel_query', 'query_voxel_coords']

# Pruning keeps an offset whose nearest possible centre is within radius up to this fraction
# of a voxel, so that float rounding of the query's voxel never removes a valid neighbour.
_PRUNE_SLACK = 1e-3


def query_voxel_coords(query_xyz: Tensor, voxel_size: Sequence[float],
                       point_cloud_range: Sequence[float], stride: int = 1) -> Tensor:
    """Voxel index of each query point at a given stride, as Voxel R-CNN computes it.

    Args:
        query_xyz (Tensor): (Q, 3) float (x, y, z) metres.
        voxel_size (Sequence[float]): (dx, dy, dz) metres of the input voxel grid.
        point_cloud_range (Sequence[float]): (x_min, y_min, z_min, x_max, y_max, z_max) metres.
        stride (int): downsampling of the scale relative to the input grid.

    Returns:
        Tensor: (Q, 3) int64 (x, y, z) index, ``floor(floor((p - min) / size) / stride)``
        (may be negative or beyond the grid for points outside the range).
    """
    size = query_xyz.new_tensor(voxel_size[:3])
    low = query_xyz.new_tensor(point_cloud_range[:3])
    coords = torch.div(query_xyz - low, size, rounding_mode='floor')
    return torch.div(coords, stride, rounding_mode='floor').long()


def _row_offsets(query_range: Sequence[int], scale_size: Sequence[float],
                 radius: float) -> Tuple[Tensor, Tensor, Tensor]:
    """(dz, dy) rows in kernel order and the x half-width kx of each after radius pruning."""
    rz, ry, rx = (int(r) for r in query_range)
    sx, sy, sz = (float(s) for s in scale_size)

    def gap(d, s):  # nearest possible distance along one axis, metres
        return max(abs(d) - 0.5 - _PRUNE_SLACK, 0.0) * s

    rows_dz, rows_dy, rows_kx = [], [], []
    for dz in range(-rz, rz + 1):
        for dy in range(-ry, ry + 1):
            rest = radius**2 - gap(dz, sz)**2 - gap(dy, sy)**2
            if rest < 0:
                continue
            # largest |dx| <= rx whose gap fits in the rest
            kx = min(rx, int(math.floor(math.sqrt(rest) / sx + 0.5 + _PRUNE_SLACK)))
            rows_dz.append(dz)
            rows_dy.append(dy)
            rows_kx.append(kx)
    return (torch.tensor(rows_dz, dtype=torch.long), torch.tensor(rows_dy, dtype=torch.long),
            torch.tensor(rows_kx, dtype=torch.long))


def voxel_query(query_xyz: Tensor,
                query_batch: Tensor,
                voxel_xyz: Tensor,
                voxel_indices: Tensor,
                voxel_size: Sequence[float],
                point_cloud_range: Sequence[float],
                query_range: Sequence[int] = (4, 4, 4),
                radius: float = 0.2,
                nsample: int = 16,
                stride: int = 1,
                chunk_size: int = 4096) -> Tuple[Tensor, Tensor]:
    """Voxel R-CNN's voxel query on one sparse scale (see the module docstring).

    Args:
        query_xyz (Tensor): (Q, 3) float (x, y, z) metres, e.g. RoI grid points.
        query_batch (Tensor): (Q,) int, sample of each query.
        voxel_xyz (Tensor): (M, 3) float (x, y, z) metres, the centres of ``voxel_indices``
            (:func:`mmfusion.ops.voxel_centers`); the radius test uses
            them and the pruning assumes they are the centres.
        voxel_indices (Tensor): (M, 4) int (batch, z, y, x) of the non-empty voxels at
            ``stride`` (spconv ``SparseConvTensor.indices``), unique.
        voxel_size (Sequence[float]): (dx, dy, dz) metres of the input voxel grid (stride 1).
        point_cloud_range (Sequence[float]): (x_min, y_min, z_min, x_max, y_max, z_max) metres.
        query_range (Sequence[int]): (rz, ry, rx) voxels of this scale searched on each side of
            the query's voxel, in the kernel's (z, y, x) order. Official [4, 4, 4].
        radius (float): metres; voxel centres farther than this from the query are dropped.
        nsample (int): S, voxels returned per query.
        stride (int): downsampling of this scale relative to the input voxel grid.
        chunk_size (int): queries processed at once (memory bound; the result does not depend
            on it).

    Returns:
        tuple[Tensor, Tensor]: ``idx`` (Q, S) int64 rows into ``voxel_xyz`` / ``voxel_indices``
        (0 for empty queries: a valid row whenever M > 0) and ``empty`` (Q,) bool, True where
        no voxel passed.

    Raises:
        ValueError: on malformed shapes, a non-positive ``nsample``, ``stride`` or
            ``chunk_size``, or a negative ``radius`` / ``query_range``.
    """
    if query_xyz.dim() != 2 or query_xyz.shape[1] != 3:
        raise ValueError(f'voxel_query: query_xyz must be (Q, 3), got {tuple(query_xyz.shape)}')
    if query_batch.shape != query_xyz.shape[:1]:
        raise ValueError(f'voxel_query: query_batch must be (Q,) = ({query_xyz.shape[0]},), '
                         f'got {tuple(query_batch.shape)}')
    if voxel_indices.dim() != 2 or voxel_indices.shape[1] != 4:
        raise ValueError('voxel_query: voxel_indices must be (M, 4) (batch, z, y, x), got '
                         f'{tuple(voxel_indices.shape)}')
    if voxel_xyz.shape != (voxel_indices.shape[0], 3):
        raise ValueError(f'voxel_query: voxel_xyz must be (M, 3) = ({voxel_indices.shape[0]}, 3),'
                         f' got {tuple(voxel_xyz.shape)}')
    if len(query_range) != 3 or min(query_range) < 0:
        raise ValueError(f'voxel_query: query_range must be 3 non-negative ints (z, y, x), got '
                         f'{query_range}')
    if nsample <= 0 or stride <= 0 or chunk_size <= 0 or radius < 0:
        raise ValueError(f'voxel_query: need nsample, stride, chunk_size > 0 and radius >= 0, '
                         f'got {nsample}, {stride}, {chunk_size}, {radius}')
    device = query_xyz.device
    num_query = query_xyz.shape[0]
    idx = torch.zeros(num_query, nsample, dtype=torch.long, device=device)
    empty = torch.ones(num_query, dtype=torch.bool, device=device)
    if num_query == 0 or voxel_indices.shape[0] == 0:
        return idx, empty

    # the grid extent: no voxel lies outside [0, extent), so bounds from the data suffice
    vind = voxel_indices.long()
    extent = vind.max(0).values + 1  # (B, Z, Y, X)
    num_b, size_z, size_y, size_x = extent.tolist()
    keys = ((vind[:, 0] * size_z + vind[:, 1]) * size_y + vind[:, 2]) * size_x + vind[:, 3]
    sorted_keys, order = keys.sort()

    scale_size = [float(s) * stride for s in voxel_size[:3]]
    rows_dz, rows_dy, rows_kx = (t.to(device) for t in _row_offsets(
        query_range, scale_size, radius))
    if rows_dz.numel() == 0:
        return idx, empty
    # the kernel compares float32 squared distances with float32(radius)^2
    radius2 = torch.tensor(radius, dtype=torch.float32, device=device)**2
    qxyz = query_xyz.float()
    vxyz = voxel_xyz.float()
    coords = query_voxel_coords(qxyz, voxel_size, point_cloud_range, stride)  # (Q, 3) x, y, z
    qbatch = query_batch.long()

    for start in range(0, num_query, chunk_size):
        stop = min(start + chunk_size, num_query)
        c = coords[start:stop]
        b = qbatch[start:stop, None]
        z = c[:, 2:3] + rows_dz
        y = c[:, 1:2] + rows_dy
        x_lo = (c[:, 0:1] - rows_kx).clamp(min=0)
        x_hi = (c[:, 0:1] + rows_kx).clamp(max=size_x - 1)
        valid = ((b >= 0) & (b < num_b) & (z >= 0) & (z < size_z) & (y >= 0) & (y < size_y)
                 & (x_lo <= x_hi))  # (Qc, R)
        row_key = ((b * size_z + z) * size_y + y) * size_x
        lo = torch.searchsorted(sorted_keys, row_key + x_lo)
        hi = torch.searchsorted(sorted_keys, row_key + x_hi, right=True)
        count = torch.where(valid, hi - lo, torch.zeros_like(lo)).flatten()
        total = int(count.sum())
        if total == 0:
            continue
        # expand every (query, row) run into its voxels; query-major, rows in kernel order
        run_start = count.cumsum(0) - count
        pos = torch.arange(total, device=device)
        run = torch.repeat_interleave(torch.arange(count.numel(), device=device), count)
        cand = order[lo.flatten()[run] + pos - run_start[run]]
        qid = torch.div(run, rows_dz.numel(), rounding_mode='floor')
        d = vxyz[cand] - qxyz[start + qid]
        dist2 = d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] + d[:, 2] * d[:, 2]
        keep = dist2 <= radius2
        qid, cand = qid[keep], cand[keep]
        if qid.numel() == 0:
            continue
        # rank of each kept voxel among its query's (qid is non-decreasing)
        per_query = torch.bincount(qid, minlength=stop - start)
        first = per_query.cumsum(0) - per_query
        rank = torch.arange(qid.numel(), device=device) - first[qid]
        take = rank < nsample
        found = per_query > 0
        chunk_idx = torch.zeros(stop - start, nsample, dtype=torch.long, device=device)
        # pad with the first kept voxel, then write the kept ones over it
        chunk_idx[found] = cand[first[found]].unsqueeze(1).expand(-1, nsample)
        chunk_idx[qid[take], rank[take]] = cand[take]
        idx[start:stop] = chunk_idx
        empty[start:stop] = ~found
    return idx, empty
