"""Make stock mmcv/mmdet3d modules run on CPU by routing their CUDA-only ops through mmfusion.

mmcv 2.1.0 ships some ops that stock mmdet3d models call with a CUDA kernel only, mmdet3d's KITTI
evaluation computes rotated IoU with a numba-CUDA kernel, and spconv's default algorithm needs
CUDA. Rather than asking users to replace modules in their configs, ``import mmfusion.det3d``
(the usual ``custom_imports`` entry) calls :func:`install_cpu_fallbacks`, which rebinds the
module-level names through which the stock code calls those ops to mmfusion's device-dispatching
functions. Each calls the original kernel for CUDA input and a PyTorch implementation otherwise,
so behaviour on GPU is the stock one. The complete list (:data:`FALLBACKS`):

- ``mmcv.ops.scatter_points.dynamic_scatter`` (called by ``mmcv.ops.DynamicScatter``, hence by
  mmdet3d's ``DynamicVFE`` and ``DynamicPillarFeatureNet``) and ``mmcv.ops.dynamic_scatter``
  -> :func:`mmfusion.ops.dynamic_scatter`;
- ``mmcv.ops.iou3d.nms_bev`` / ``nms_normal_bev`` and their ``mmcv.ops`` aliases
  -> :func:`mmfusion.ops.nms_bev` / :func:`mmfusion.ops.nms_normal_bev`;
- ``mmdet3d.evaluation.functional.kitti_utils.eval.bev_box_overlap`` / ``d3_box_overlap``
  (``KittiMetric``) -> :mod:`mmfusion.evaluation.kitti_overlaps`, built on
  :func:`mmfusion.ops.rotated_overlaps.rotated_overlaps_bev`;
- the ``forward`` of spconv's ``SparseConvolution`` and ``SparseMaxPool``: ``ConvAlgo.Native``
  for CPU input (:func:`mmfusion.ops.spconv_algo.use_native_spconv_on_cpu`).

Why NMS is in the list although it does not crash: mmcv 2.1.0's 5-column ``nms_bev`` /
``nms_normal_bev`` (and mmdet3d 1.4's copies in ``mmdet3d.models.layers``) call mmcv's
``nms_rotated`` / ``nms``, which have CPU kernels, but the CPU ``nms_rotated`` suppresses at
IoU >= thr while the CUDA kernel suppresses at IoU > thr, and every call of the ``iou3d`` names
warns about deprecation. mmfusion's versions apply the CUDA rule on both devices. mmdet3d's own
``nms_bev`` / ``nms_normal_bev`` (``mmdet3d.models.layers.box3d_nms`` and the copies its heads
bind at import: CenterPoint, Part-A2 RPN, PointRCNN RPN, and the Part-A2 / PointRCNN / PV-RCNN
bbox heads) are routed too, because mmcv's CPU ``nms_rotated`` is quadratic with a slow pair
test: measured 55.9 s for the 9000 proposals of one KITTI frame (Part-A2/Voxel R-CNN
``rpn_proposal.nms_pre``) against 0.65 s for :func:`mmfusion.ops.nms_bev`, same kept indices.

Code that bound one of the names above *before* ``mmfusion.det3d`` was imported
(``from mmcv.ops import dynamic_scatter`` at module level) keeps the original; mmcv's own
modules look the names up at call time, so they are covered.
"""
import importlib

# (module, attribute, 'module:function' of the replacement)
FALLBACKS = (
    ('mmcv.ops.scatter_points', 'dynamic_scatter', 'mmfusion.ops.dynamic_scatter:dynamic_scatter'),
    ('mmcv.ops', 'dynamic_scatter', 'mmfusion.ops.dynamic_scatter:dynamic_scatter'),
    ('mmcv.ops.iou3d', 'nms_bev', 'mmfusion.ops.nms_bev:nms_bev'),
    ('mmcv.ops', 'nms_bev', 'mmfusion.ops.nms_bev:nms_bev'),
    ('mmcv.ops.iou3d', 'nms_normal_bev', 'mmfusion.ops.nms_bev:nms_normal_bev'),
    ('mmcv.ops', 'nms_normal_bev', 'mmfusion.ops.nms_bev:nms_normal_bev'),
) + tuple(
    (module, name, f'mmfusion.ops.nms_bev:{name}')
    for module in ('mmdet3d.models.layers.box3d_nms', 'mmdet3d.models.layers',
                   'mmdet3d.models.dense_heads.centerpoint_head',
                   'mmdet3d.models.dense_heads.parta2_rpn_head',
                   'mmdet3d.models.dense_heads.point_rpn_head',
                   'mmdet3d.models.roi_heads.bbox_heads.parta2_bbox_head',
                   'mmdet3d.models.roi_heads.bbox_heads.point_rcnn_bbox_head',
                   'mmdet3d.models.roi_heads.bbox_heads.pv_rcnn_bbox_head')
    for name in ('nms_bev', 'nms_normal_bev')
) + (
    ('mmdet3d.evaluation.functional.kitti_utils.eval', 'bev_box_overlap',
     'mmfusion.evaluation.kitti_overlaps:bev_box_overlap'),
    ('mmdet3d.evaluation.functional.kitti_utils.eval', 'd3_box_overlap',
     'mmfusion.evaluation.kitti_overlaps:d3_box_overlap'),
)


def _resolve(spec):
    module, _, name = spec.partition(':')
    return getattr(importlib.import_module(module), name)


def install_cpu_fallbacks():
    """Rebind the names in :data:`FALLBACKS` and patch spconv (idempotent).

    Returns:
        list[str]: The ``module.attribute`` names now routed through mmfusion.

    Raises:
        ImportError: If mmcv (built with ops) is not installed.
    """
    installed = []
    for module, attr, spec in FALLBACKS:
        target = importlib.import_module(module)
        setattr(target, attr, _resolve(spec))
        installed.append(f'{module}.{attr}')
    from .spconv_algo import use_native_spconv_on_cpu
    if use_native_spconv_on_cpu():
        installed.append('spconv.pytorch.SparseConvolution.forward')
        installed.append('spconv.pytorch.SparseMaxPool.forward')
    return installed
