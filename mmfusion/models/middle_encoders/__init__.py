"""Middle encoders (voxel backbones) of mmfusion, registered in mmdet3d; imported by
``mmfusion.det3d`` only, so that mmdet/mmseg entry points do not pull in mmdet3d."""
from .sslfusion_sparse_unet import SSLFusionSparseUNet

__all__ = ['SSLFusionSparseUNet']
