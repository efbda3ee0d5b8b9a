"""RoI heads and RoI extractors (second stages of two-stage 3D detectors), registered into
``mmdet3d.registry`` when imported (``import mmfusion.det3d``)."""
from .voxel_rcnn_roi_head import VoxelRCNNRoIHead
from .voxel_roi_pooling import NeighborVoxelPooling, VoxelRoIGridPooling

__all__ = ['VoxelRCNNRoIHead', 'VoxelRoIGridPooling', 'NeighborVoxelPooling']
