"""Make stock mmcv/mmdet3d modules run on CPU by routing their CUDA-only ops through mmfusion.

mmcv 2.1.0 ships some ops used by stock mmdet3d models with a CUDA kernel only. Rather than
asking users to replace modules in their configs, ``import mmfusion.det3d`` (the usual
``custom_imports`` entry) calls :func:`install_cpu_fallbacks`, which rebinds the module-level
names through which mmcv calls those ops to mmfusion's device-dispatching functions. Each of
them calls the original mmcv kernel for CUDA tensors and a PyTorch implementation for CPU
tensors, so behaviour on GPU is unchanged. The complete list is :data:`FALLBACKS`:

=========================================  ==============================================
rebound name                               replacement (dispatching function)
=========================================  ==============================================
``mmcv.ops.scatter_points.dynamic_scatter``  :func:`mmfusion.ops.dynamic_scatter`
  (called by ``mmcv.ops.DynamicScatter``, hence by mmdet3d's ``DynamicVFE`` and
  ``DynamicPillarFeatureNet``), and ``mmcv.ops.dynamic_scatter``
``mmcv.ops.iou3d.nms_bev``, ``mmcv.ops.nms_bev``  :func:`mmfusion.ops.nms_bev`
``mmcv.ops.iou3d.nms_normal_bev``, ``mmcv.ops.nms_normal_bev``  :func:`mmfusion.ops.nms_normal_bev`
spconv ``SparseConvolution`` / ``SparseMaxPool`` ``forward``  ``ConvAlgo.Native`` on CPU
  (:func:`mmfusion.ops.spconv_algo.use_native_spconv_on_cpu`)
=========================================  ==============================================

Why NMS is in the list although it does not crash: mmcv 2.1.0's 5-column ``nms_bev`` /
``nms_normal_bev`` (and mmdet3d 1.4's copies in ``mmdet3d.models.layers``) call mmcv's
``nms_rotated`` / ``nms``, which have CPU kernels, but the CPU ``nms_rotated`` suppresses at
IoU >= thr while the CUDA kernel suppresses at IoU > thr, and every call of the ``iou3d`` names
warns about deprecation. mmfusion's versions apply the CUDA rule on both devices. mmdet3d's own
``mmdet3d.models.layers.nms_bev`` is left as it is (stock behaviour for stock heads).

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
