"""Device-dispatching ops: the CUDA kernel (mmcv, spconv, mamba-ssm) for CUDA tensors when it
is available, a PyTorch implementation otherwise. One public function per op.

``install_cpu_fallbacks`` (called by ``import mmfusion.det3d``) routes stock mmcv modules through
these functions; see :mod:`mmfusion.ops.cpu_fallbacks`. Host-neutral: importing this package
loads torch only; ``spconv_algo`` (spconv) and ``rotated_overlaps`` (mmdet3d, numba) are imported by
``mmfusion.det3d`` on demand.
"""
from .cpu_fallbacks import install_cpu_fallbacks
from .dynamic_scatter import dynamic_scatter
from .nms_bev import nms_bev, nms_normal_bev
from .selective_scan import selective_scan
from .voxel_centers import voxel_centers
from .voxel_query import voxel_query

__all__ = [
    'dynamic_scatter', 'nms_bev', 'nms_normal_bev', 'selective_scan', 'install_cpu_fallbacks',
    'voxel_centers', 'voxel_query'
]
