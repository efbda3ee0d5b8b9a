"""Centres of sparse voxels in metres, from their integer indices (any device).

Used by SSLFusion's SAM/SAF (image sampling at voxel centres) and Voxel R-CNN's RoI grid pooling.
The formula is OpenPCDet's ``get_voxel_centers`` (``pcdet/utils/common_utils.py``).
"""
from typing import Sequence

from torch import Tensor

__all__ = ['voxel_centers']


def voxel_centers(indices: Tensor, voxel_size: Sequence[float],
                  point_cloud_range: Sequence[float], stride: int = 1) -> Tensor:
    """Centres of sparse voxels in the (augmented) LiDAR frame.

    Args:
        indices (Tensor): (M, 4) int, spconv / OpenPCDet order (batch, z, y, x), at ``stride``.
        voxel_size (Sequence[float]): (dx, dy, dz) metres of the input voxel grid.
        point_cloud_range (Sequence[float]): (x_min, y_min, z_min, x_max, y_max, z_max) metres.
        stride (int): downsampling of the stage relative to the input voxel grid.

    Returns:
        Tensor: (M, 3) float32 (x, y, z) metres, ``(index + 0.5) * voxel_size * stride + min``.

    Raises:
        ValueError: If ``indices`` is not of shape (M, 4).
    """
    if indices.dim() != 2 or indices.shape[1] != 4:
        raise ValueError(f'indices must be (M, 4) (batch, z, y, x), got {tuple(indices.shape)}')
    xyz = indices[:, [3, 2, 1]].float()
    size = xyz.new_tensor(voxel_size) * stride
    low = xyz.new_tensor(point_cloud_range[:3])
    return (xyz + 0.5) * size + low
