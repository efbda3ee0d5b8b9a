"""SAM, the 3D-to-2D Space Alignment module of SSLFusion: image features for voxel centres.

Paper: B. Ding, J. Xie, J. Nie, J. Cao, "SSLFusion: Scale & Space Aligned Latent Fusion Model for
Multimodal 3D Object Detection", arXiv 2504.05170, Sec. "3D-to-2D Space Alignment Module".
Official code (read, not copied): github.com/TLDBN/SSLFsion,
``pcdet/models/backbones_2d/fuser/SSLFusion.py`` (``point_sample_single_kitti``, ``depth_emb``).
Stock pieces reused: mmdet3d's ``apply_3d_transformation`` and ``F.grid_sample``.

Shape shorthand: M voxels of the whole batch (M = sum of M_b), B samples, C image channels,
H_f x W_f the image feature map of stride s (input pixels per feature cell).

Pixel convention: (u, v) are ``lidar2img`` pixels of the *original* image (u right, v down,
integer values at pixel centres). On the network input a point sits at ``(u + 0.5, v + 0.5)``
mapped by mmdet3d's image augmentations in its order (scale by ``scale_factor``, subtract
``img_crop_offset``, mirror for ``flip``), and ``grid_sample(align_corners=False)`` reads the
feature map whose cell (i, j) covers input pixels [s*i, s*(i+1)).

What one call computes, per sample b (a loop over the B samples, not over voxels)::

    p     = undo_augmentation(v, meta_b)             (M_b, 3) metres, original LiDAR frame
    [x, y, w] = lidar2img @ [p, 1]                    w: depth along the optical axis (metres)
    q     = image_transforms(x / w + 0.5, y / w + 0.5)   (M_b, 2) input pixels
    F     = grid_sample(img_feats[b], 2 q / (s [W_f, H_f]) - 1, bilinear, align_corners=False)
    valid = (w > min_depth) & (0 <= q_x < W) & (0 <= q_y < H)   W, H = img_shape (no padding)
    D     = sigmoid(fc2(tanh(fc1(p / coord_scale))))  (M_b, 1), the depth embedding
    out   = where(valid, D * F, 0)                   (M_b, C)

Differences from the official code (reasons in ``projects/SSLFusion/README.md``, "Differences"):
points behind the camera are masked; bilinear sampling on each level's own stride instead of
an upsampled full-size map; every recorded augmentation is undone (``transformation_3d_flow``),
image-side ones included; voxel centres at ``index + 0.5`` (:func:`mmfusion.ops.voxel_centers`);
the depth-embedding input is (x, y, z) where the official code feeds (z, y, x); ``coord_scale``
(default 1, as the official code) is a new option; one camera per sample.
"""
from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmdet3d.models.layers.fusion_layers import apply_3d_transformation
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

__all__ = ['SpaceAlignment']


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
