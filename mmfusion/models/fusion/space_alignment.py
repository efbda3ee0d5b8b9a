"""SAM, the 3D-to-2D Space Alignment module of SSLFusion: image features for voxel centres.

Paper: B. Ding, J. Xie, J. Nie, J. Cao, "SSLFusion: Scale & Space Aligned Latent Fusion Model for
Multimodal 3D Object Detection", arXiv 2504.05170, Sec. "3D-to-2D Space Alignment
Module": every voxel centre v = (x, y, z) of a sparse-backbone stage is projected into the image,
the image feature there is read, and a depth embedding ``D = sigmoid(fc2(tanh(fc1(v))))`` weights
it, ``F_hat = D * F``. Official code: github.com/TLDBN/SSLFsion,
``pcdet/models/backbones_2d/fuser/SSLFusion.py`` (``point_sample_single_kitti`` and the
``depth_emb`` MLP: 3 -> 64, Tanh, 64 -> 1, Sigmoid), read to settle what the paper leaves open and
not copied. Stock pieces reused: mmdet3d's ``apply_3d_transformation`` (undoes the recorded
LiDAR augmentations) and ``F.grid_sample``.

Shape shorthand: M voxels of the whole batch (M = sum of M_b), B samples, C image channels,
H_f x W_f the image feature map of stride s (pixels of the network input per feature cell).

Pixel convention (all docstrings here): "pixel coordinates" (u, v) are the camera model's, as
``lidar2img`` gives them: u right, v down, in pixels of the *original* image, integer values at
pixel centres (pixel (i, j) is u = i, v = j). On the network input (resized, cropped, flipped,
padded image) a point sits at the continuous position ``(u + 0.5, v + 0.5)`` of the original
image (edge convention: the image covers [0, W) x [0, H)), mapped by the image augmentations in
mmdet3d's order (``point_sample``): scale by ``scale_factor`` (w, h), subtract
``img_crop_offset`` (x, y), then mirror ``x -> W - x`` (``flip``, horizontal; ``flip_direction``
'vertical' / 'diagonal' mirror y / both), with W, H from ``img_shape``. A feature cell (i, j) of
stride s covers input pixels [s*i, s*(i+1)), its centre at s*(i + 0.5) in that edge convention,
which is what ``grid_sample(..., align_corners=False)`` assumes when the grid is normalised by
the feature map's extent s * W_f (the padded input width). So a voxel projecting exactly to the
original pixel u = s*i + (s - 1) / 2 of an unaugmented image reads feature column i exactly
(for s = 1: integer pixel u reads column u).

What one call computes, per sample b (a Python loop over the B samples, not over voxels)::

    p     = undo_augmentation(v, meta_b)             (M_b, 3) metres, original LiDAR frame
    [x, y, w] = lidar2img @ [p, 1]                    w: depth along the optical axis (metres)
    (u, v) = (x / w, y / w)                          pixels of the original image
    q     = image_transforms(u + 0.5, v + 0.5)       (M_b, 2) edge-convention input pixels
    F     = grid_sample(img_feats[b], 2 q / (s [W_f, H_f]) - 1, bilinear, align_corners=False)
    valid = (w > min_depth) & (0 <= q_x < W) & (0 <= q_y < H)   W, H = img_shape (no padding)
    D     = sigmoid(fc2(tanh(fc1(p / coord_scale))))  (M_b, 1), the depth embedding
    out   = where(valid, D * F, 0)                   (M_b, C)

Fixes relative to the official code, and other deliberate differences:

- Points behind the camera are masked (``w > min_depth``). The official code divides by the
  depth and keeps any point whose pixel lands in the image, so points behind the camera with a
  mirrored projection inside the image read features of unrelated pixels.
- Bilinear sampling on the stage's own feature level (``F.grid_sample``, ``align_corners=False``,
  pixel convention above) instead of truncating the pixel coordinate to an integer on an image
  feature map first upsampled to the full image size (``align_corners=True`` interpolation),
  which costs a full-resolution copy of every level and shifts samples by up to one pixel.
- All augmentations are undone from the recorded metadata, in the recorded order
  (``transformation_3d_flow``), through mmdet3d's ``apply_3d_transformation``; the official code
  undoes OpenPCDet's scale / rotation / flips in a fixed order. The image-side resize, crop and
  flip are applied to the projected pixels (the official code assumes an unaugmented image).
  If a non-identity augmentation is recorded without ``transformation_3d_flow``, a
  ``ValueError`` is raised: ``apply_3d_transformation`` would silently undo nothing.
- Projection runs in PyTorch on the features' device; the official code goes through NumPy on
  the CPU (``calib.lidar_to_img(... .cpu().numpy())``) and builds tensors with ``.cuda()``.
- The voxel centres are given by the caller; :func:`voxel_centers` computes them from sparse
  indices as ``(index + 0.5) * voxel_size * stride + range_min`` (OpenPCDet's
  ``get_voxel_centers``). The official fuser uses the voxel's lower corner (no ``+ 0.5``).
- ``coord_scale`` (metres, default 1 = paper and official code) divides the coordinates before
  ``fc1``; with KITTI ranges of +-70 m the default Tanh saturates at initialisation, a larger
  scale (e.g. 50) keeps it in its linear range. ``with_depth_embedding=False`` gives D = 1 (the
  ablation without it).
- The depth embedding sees the voxel centre in the original LiDAR frame (after undoing the
  augmentations, as the official code), so D does not change with the augmentation; its input
  order is (x, y, z) where the official code feeds (z, y, x) (a checkpoint's ``depth_emb.0``
  weight maps with its columns reversed).
- Only one camera (``lidar2img`` of shape (4, 4) or (3, 4)) per sample; multi-view metadata
  raises ``ValueError``. ``lidar2img`` must describe the original image (as the dataset infos
  give it and mmdet3d's ``PointFusion`` assumes); pipelines that fold the image augmentation
  into ``lidar2img`` themselves would have it applied twice.
- Compared with mmdet3d's ``point_sample`` (which scales ``u`` without the half-pixel shift,
  mirrors with ``W - u`` and normalises by the padded size with ``align_corners=True``), the
  positions here are exact under one stated convention; the two differ by up to one pixel.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmdet3d.models.layers.fusion_layers import apply_3d_transformation
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

__all__ = ['SpaceAlignment', 'voxel_centers']


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
    """
    if indices.dim() != 2 or indices.shape[1] != 4:
        raise ValueError(f'indices must be (M, 4) (batch, z, y, x), got {tuple(indices.shape)}')
    xyz = indices[:, [3, 2, 1]].float()
    size = xyz.new_tensor(voxel_size) * stride
    low = xyz.new_tensor(point_cloud_range[:3])
    return (xyz + 0.5) * size + low


def _as_tensor(value, like: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        return value.to(device=like.device, dtype=like.dtype)
    return like.new_tensor(np.asarray(value, dtype=np.float64))


def _has_3d_augmentation(meta: dict) -> bool:
    """True if ``meta`` records a LiDAR augmentation other than the identity."""
    if meta.get('pcd_horizontal_flip', False) or meta.get('pcd_vertical_flip', False):
        return True
    if abs(float(meta.get('pcd_scale_factor', 1.0)) - 1.0) > 1e-9:
        return True
    if 'pcd_trans' in meta and np.any(np.abs(np.asarray(meta['pcd_trans'])) > 1e-9):
        return True
    if 'pcd_rotation' in meta:
        rot = meta['pcd_rotation']
        rot = rot.detach().cpu().numpy() if isinstance(rot, Tensor) else np.asarray(rot)
        if np.abs(rot - np.eye(3)).max() > 1e-9:
            return True
    return False


@MODELS.register_module()
class SpaceAlignment(BaseModule):
    """SAM: project voxel centres into the image, sample features, weight by a depth embedding.

    Args:
        embed_channels (int): hidden width of the depth embedding MLP (official 64).
        with_depth_embedding (bool): weight the sampled features by D. Default True.
        coord_scale (float): metres; the depth embedding sees ``p / coord_scale``. Default 1.0
            (paper and official code).
        min_depth (float): metres; projections with depth <= this are masked. Default 1e-3.
        dropout_ratio (float): dropout on the sampled image features in training (official
            ``dropout_ratio``, default 0).
        coord_type (str): point type for ``apply_3d_transformation``. Default 'LIDAR'.
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self,
                 embed_channels: int = 64,
                 with_depth_embedding: bool = True,
                 coord_scale: float = 1.0,
                 min_depth: float = 1e-3,
                 dropout_ratio: float = 0.0,
                 coord_type: str = 'LIDAR',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if coord_scale <= 0:
            raise ValueError(f'coord_scale must be positive, got {coord_scale}')
        self.with_depth_embedding = with_depth_embedding
        self.coord_scale = float(coord_scale)
        self.min_depth = float(min_depth)
        self.dropout_ratio = float(dropout_ratio)
        self.coord_type = coord_type
        self.depth_embedding = nn.Sequential(
            nn.Linear(3, embed_channels), nn.Tanh(), nn.Linear(embed_channels, 1),
            nn.Sigmoid()) if with_depth_embedding else None

    # -- geometry -------------------------------------------------------------------------------
    def undo_augmentation(self, points: Tensor, img_meta: dict) -> Tensor:
        """Map points from the augmented LiDAR frame back to the original one.

        Args:
            points (Tensor): (M, 3) metres, augmented frame (what the backbone sees).
            img_meta (dict): one sample's metainfo (``pcd_rotation``, ``pcd_scale_factor``,
                ``pcd_trans``, ``pcd_horizontal_flip``, ``pcd_vertical_flip``,
                ``transformation_3d_flow``), as mmdet3d's GlobalRotScaleTrans / RandomFlip3D
                record them.

        Returns:
            Tensor: (M, 3) metres, original LiDAR frame (the frame of ``lidar2img``).

        Raises:
            ValueError: if an augmentation is recorded but ``transformation_3d_flow`` is not.
        """
        if 'transformation_3d_flow' not in img_meta:
            if _has_3d_augmentation(img_meta):
                raise ValueError(
                    'SpaceAlignment: img_meta records a LiDAR augmentation (pcd_rotation / '
                    'pcd_scale_factor / pcd_trans / pcd_*_flip) but no transformation_3d_flow, '
                    'so its order is unknown; keep transformation_3d_flow in the meta_keys of '
                    'Pack3DDetInputs')
            return points
        meta = dict(img_meta)
        if isinstance(meta.get('pcd_rotation'), Tensor):  # avoids torch.tensor(tensor) warning
            meta['pcd_rotation'] = meta['pcd_rotation'].detach().cpu().numpy()
        return apply_3d_transformation(points, self.coord_type, meta, reverse=True)

    @staticmethod
    def lidar2img(img_meta: dict, like: Tensor) -> Tensor:
        """``img_meta['lidar2img']`` as a (4, 4) tensor on ``like``'s device and dtype.

        Raises:
            KeyError: if ``lidar2img`` is missing. ValueError: if it is not (3, 4) or (4, 4).
        """
        if 'lidar2img' not in img_meta:
            raise KeyError('SpaceAlignment: img_meta has no lidar2img (use a dataset with '
                           "modality use_camera=True and keep 'lidar2img' in the meta_keys)")
        mat = _as_tensor(img_meta['lidar2img'], like)
        if mat.shape == (3, 4):
            mat = torch.cat([mat, mat.new_tensor([[0., 0., 0., 1.]])])
        if mat.shape != (4, 4):
            raise ValueError('SpaceAlignment supports one camera per sample: lidar2img must be '
                             f'(4, 4) or (3, 4), got {tuple(mat.shape)}')
        return mat

    def project(self, points: Tensor, img_meta: dict) -> Tuple[Tensor, Tensor, Tensor]:
        """Project points of the augmented LiDAR frame into the original image.

        Args:
            points (Tensor): (M, 3) metres, augmented LiDAR frame.
            img_meta (dict): one sample's metainfo (see :meth:`undo_augmentation`, ``lidar2img``).

        Returns:
            tuple[Tensor, Tensor, Tensor]: ``uv`` (M, 2) pixel coordinates in the original image
            (camera-model convention, integer values at pixel centres; meaningless where
            ``depth <= min_depth``), ``depth`` (M,) metres along the optical axis (the third
            homogeneous coordinate of ``lidar2img @ p``) and ``points_orig`` (M, 3) metres,
            original LiDAR frame.
        """
        points = points.float()
        points_orig = self.undo_augmentation(points, img_meta)
        mat = self.lidar2img(img_meta, points)
        cam = points_orig @ mat[:3, :3].T + mat[:3, 3]
        depth = cam[:, 2]
        uv = cam[:, :2] / depth.clamp(min=self.min_depth).unsqueeze(1)
        return uv, depth, points_orig

    @staticmethod
    def image_coords(uv: Tensor, img_meta: dict) -> Tuple[Tensor, Tensor]:
        """Original-image pixel coordinates -> network-input pixel positions (edge convention).

        Args:
            uv (Tensor): (M, 2) pixel coordinates of the original image (pixel centres integer).
            img_meta (dict): ``scale_factor`` (w, h), ``img_crop_offset`` (x, y), ``flip``,
                ``flip_direction``, ``img_shape`` (H, W) of the augmented image before padding.

        Returns:
            tuple[Tensor, Tensor]: ``q`` (M, 2) continuous positions on the network input, in
            pixels, edge convention (the image covers [0, W) x [0, H)), and ``inside`` (M,) bool,
            True where ``q`` lies in the unpadded image.
        """
        q = uv + 0.5
        if 'scale_factor' in img_meta:
            scale = _as_tensor(img_meta['scale_factor'], q).reshape(-1)[:2]
            q = q * scale
        if 'img_crop_offset' in img_meta:
            q = q - _as_tensor(img_meta['img_crop_offset'], q).reshape(-1)[:2]
        h, w = img_meta['img_shape'][:2]
        if img_meta.get('flip', False):
            direction = img_meta.get('flip_direction') or 'horizontal'
            if direction not in ('horizontal', 'vertical', 'diagonal'):
                raise ValueError(f'SpaceAlignment: unknown flip_direction {direction!r}')
            qx, qy = q.unbind(1)
            if direction in ('horizontal', 'diagonal'):
                qx = w - qx
            if direction in ('vertical', 'diagonal'):
                qy = h - qy
            q = torch.stack([qx, qy], dim=1)
        inside = (q[:, 0] >= 0) & (q[:, 0] < w) & (q[:, 1] >= 0) & (q[:, 1] < h)
        return q, inside

    @staticmethod
    def sample(img_feat: Tensor, q: Tensor, stride: float) -> Tensor:
        """Bilinear image features at input-pixel positions.

        Args:
            img_feat (Tensor): (C, H_f, W_f) feature map of stride ``stride``.
            q (Tensor): (M, 2) network-input positions (x, y), pixels, edge convention.
            stride (float): input pixels per feature cell.

        Returns:
            Tensor: (M, C); taps outside the map read 0 (``padding_mode='zeros'``).
        """
        h_f, w_f = img_feat.shape[-2:]
        extent = q.new_tensor([w_f * stride, h_f * stride])
        grid = (2 * q / extent - 1).to(img_feat.dtype).view(1, 1, -1, 2)
        out = F.grid_sample(img_feat.unsqueeze(0), grid, mode='bilinear', padding_mode='zeros',
                            align_corners=False)  # (1, C, 1, M)
        return out[0, :, 0].t()

    def embed_depth(self, points_orig: Tensor) -> Tensor:
        """The depth embedding D (M, 1) in (0, 1) of points (M, 3) metres, original frame."""
        return self.depth_embedding(points_orig / self.coord_scale)

    # -- forward --------------------------------------------------------------------------------
    def forward(self, points: Tensor, batch_idx: Tensor, img_feats: Tensor,
                img_metas: List[dict], stride: float) -> Tuple[Tensor, Tensor]:
        """Image features for voxel centres.

        Args:
            points (Tensor): (M, 3) voxel centres, metres, augmented LiDAR frame.
            batch_idx (Tensor): (M,) int, sample of each voxel, in [0, B).
            img_feats (Tensor): (B, C, H_f, W_f) one image feature level of the padded batch.
            img_metas (list[dict]): B metainfo dicts (``Det3DDataSample.metainfo``).
            stride (float): input pixels per feature cell of ``img_feats`` (4 for FPN P2, ...).

        Returns:
            tuple[Tensor, Tensor]: ``feats`` (M, C), ``D * F`` (zero where not valid) in
            ``img_feats``' dtype, and ``valid`` (M,) bool: in front of the camera
            (depth > ``min_depth``) and inside the augmented image (``img_shape``).

        Raises:
            ValueError: on inconsistent shapes (see also :meth:`undo_augmentation`,
            :meth:`lidar2img`).
        """
        if points.dim() != 2 or points.shape[1] != 3:
            raise ValueError(f'points must be (M, 3), got {tuple(points.shape)}')
        if batch_idx.shape != points.shape[:1]:
            raise ValueError(f'batch_idx must be (M,) = ({points.shape[0]},), '
                             f'got {tuple(batch_idx.shape)}')
        if img_feats.dim() != 4 or img_feats.shape[0] != len(img_metas):
            raise ValueError(f'img_feats must be (B, C, H, W) with B = len(img_metas) = '
                             f'{len(img_metas)}, got {tuple(img_feats.shape)}')
        num_voxels, channels = points.shape[0], img_feats.shape[1]
        feats = img_feats.new_zeros(num_voxels, channels)
        valid = torch.zeros(num_voxels, dtype=torch.bool, device=points.device)
        weights = img_feats.new_ones(num_voxels, 1)
        for b, meta in enumerate(img_metas):
            sel = (batch_idx == b).nonzero(as_tuple=True)[0]
            if sel.numel() == 0:
                continue
            uv, depth, points_orig = self.project(points[sel], meta)
            q, inside = self.image_coords(uv, meta)
            ok = inside & (depth > self.min_depth)
            feats[sel] = self.sample(img_feats[b], q, stride)
            valid[sel] = ok
            if self.with_depth_embedding:
                weights[sel] = self.embed_depth(points_orig).to(weights.dtype)
        feats = torch.where(valid.unsqueeze(1), feats * weights, feats.new_zeros(()))
        if self.training and self.dropout_ratio > 0:
            feats = F.dropout(feats, p=self.dropout_ratio)
        return feats, valid
