"""Replacements for the two overlap functions of mmdet3d 1.4's KITTI evaluation.

``mmdet3d.evaluation.functional.kitti_utils.eval.bev_box_overlap`` and ``d3_box_overlap`` import
the numba-CUDA kernel ``rotate_iou_gpu_eval`` when called, which fails without a CUDA driver.
These have the same signatures and bodies but call :func:`mmfusion.ops.rotated_overlaps.
rotated_overlaps_bev`, which uses that kernel when numba finds CUDA and an exact PyTorch
computation otherwise. ``import mmfusion.det3d`` rebinds the eval module's names to them (see
:mod:`mmfusion.ops.cpu_fallbacks`); ``calculate_iou_partly`` looks them up at call time.
"""
from mmfusion.ops.rotated_overlaps import rotated_overlaps_bev


def bev_box_overlap(boxes, qboxes, criterion=-1):
    """BEV overlaps (N, K) of camera-frame BEV boxes (N, 5) / (K, 5) ``[x, z, l, w, ry]``."""
    return rotated_overlaps_bev(boxes, qboxes, criterion)


def d3_box_overlap(boxes, qboxes, criterion=-1):
    """3D overlaps (N, K) of camera-frame boxes (N, 7) / (K, 7) ``[x, y, z, l, h, w, ry]``.

    The BEV intersection comes from :func:`rotated_overlaps_bev`; mmdet3d's numba CPU kernel
    ``d3_box_overlap_kernel`` turns it into 3D overlaps in place, exactly as the stock function.
    """
    from mmdet3d.evaluation.functional.kitti_utils.eval import d3_box_overlap_kernel
    rinc = rotated_overlaps_bev(boxes[:, [0, 2, 3, 5, 6]], qboxes[:, [0, 2, 3, 5, 6]], 2)
    d3_box_overlap_kernel(boxes, qboxes, rinc, criterion)
    return rinc
