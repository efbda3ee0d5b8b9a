"""Device-dispatching rotated BEV overlaps with the semantics of mmdet3d's KITTI-eval kernel.

Why this file exists: mmdet3d 1.4's KITTI evaluation (``KittiMetric`` ->
``kitti_utils.eval.bev_box_overlap`` / ``d3_box_overlap``) computes rotated BEV overlaps with
``kitti_utils.rotate_iou.rotate_iou_gpu_eval``, a numba-CUDA kernel compiled when that module is
imported, so on a machine without a CUDA driver the import itself fails
(``numba.cuda.cudadrv.error.CudaSupportError``) and no KITTI metric can be computed.

Shapes: N boxes, K query boxes, each ``[x, y, dx, dy, r]`` (the eval passes camera-frame BEV
boxes ``[x, z, l, w, ry]``: metres, radians). Semantics of ``rotate_iou_gpu_eval`` (mmdet3d
``kitti_utils/rotate_iou.py``): the corners of a box are ``(x, y) + R(-r) (+-dx/2, +-dy/2)`` and
``out[n, k]`` compares query box k (``area1``) with box n (``area2``)::

    criterion -1: inter / (area1 + area2 - inter)   (IoU)
    criterion  0: inter / area1
    criterion  1: inter / area2
    otherwise:    inter                              (used by the 3D overlap)

Only pairs whose axis-aligned bounding boxes overlap are evaluated (the others have no
intersection). Computed in float64 with the exact polygon intersection of
:mod:`mmfusion.ops._rotated_geometry`; returned as float32, as the kernel returns.
"""
import numpy as np
import torch

from ._rotated_geometry import rotated_pair_intersection


def _numba_cuda_available():
    try:
        from numba import cuda
        return cuda.is_available()
    except Exception:  # numba missing or a broken driver: no CUDA path
        return False


def _aabb(boxes):
    """Half extents of the axis-aligned bounding boxes of rotated boxes (N, 5) -> (N, 2)."""
    cos, sin = boxes[:, 4].cos().abs(), boxes[:, 4].sin().abs()
    half_x = (boxes[:, 2] * cos + boxes[:, 3] * sin) / 2
    half_y = (boxes[:, 2] * sin + boxes[:, 3] * cos) / 2
    return torch.stack([half_x, half_y], 1)


def _rotated_overlaps_bev_torch(boxes, query_boxes, criterion):
    b = torch.from_numpy(np.asarray(boxes, dtype=np.float64)).reshape(-1, 5)
    q = torch.from_numpy(np.asarray(query_boxes, dtype=np.float64)).reshape(-1, 5)
    out = torch.zeros(len(b), len(q), dtype=torch.float64)
    if len(b) == 0 or len(q) == 0:
        return out.float().numpy()
    hb, hq = _aabb(b), _aabb(q)
    near = ((b[:, None, :2] - q[None, :, :2]).abs() < hb[:, None] + hq[None]).all(-1)
    n, k = near.nonzero(as_tuple=True)
    # R(-r) in the kernel = R(r) applied to the mirrored frame; a mirror preserves areas, so the
    # angle is negated to follow the kernel's corner order exactly.
    flip = torch.tensor([1., 1., 1., 1., -1.], dtype=torch.float64)
    inter = rotated_pair_intersection(q[k] * flip, b[n] * flip)
    area1, area2 = q[k, 2] * q[k, 3], b[n, 2] * b[n, 3]
    if criterion == -1:
        value = inter / (area1 + area2 - inter)
    elif criterion == 0:
        value = inter / area1
    elif criterion == 1:
        value = inter / area2
    else:
        value = inter
    out[n, k] = value
    return out.float().numpy()


def rotated_overlaps_bev(boxes, query_boxes, criterion=-1):
    """Rotated overlaps of BEV boxes, as mmdet3d's ``rotate_iou_gpu_eval``.

    Args:
        boxes (np.ndarray): (N, 5) ``[x, y, dx, dy, r]``.
        query_boxes (np.ndarray): (K, 5), same format.
        criterion (int): -1 IoU, 0 inter/area(query), 1 inter/area(box), else the intersection.

    Returns:
        np.ndarray: (N, K) float32.

    Raises:
        ValueError: If an input does not have 5 columns.
    """
    for name, arr in (('boxes', boxes), ('query_boxes', query_boxes)):
        if np.ndim(arr) != 2 or np.shape(arr)[1] != 5:
            raise ValueError(f'{name} must be (N, 5) [x, y, dx, dy, r], got {np.shape(arr)}')
    if _numba_cuda_available():
        from mmdet3d.evaluation.functional.kitti_utils.rotate_iou import rotate_iou_gpu_eval
        return rotate_iou_gpu_eval(boxes, query_boxes, criterion)
    return _rotated_overlaps_bev_torch(boxes, query_boxes, criterion)
