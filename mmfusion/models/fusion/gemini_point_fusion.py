"""GeminiPointFusion: GeminiFusion as a drop-in for MVX-Net's point-wise image fusion.

Paper: D. Jia, J. Guo, K. Han, H. Wu, C. Zhang, C. Xu, X. Chen, "GeminiFusion: Efficient Pixel-wise
Multimodal Fusion for Vision Transformer", ICML 2024 (arXiv 2406.01210), Sec. 3 (the fusion module)
and its KITTI 3D-detection experiment (MVX-Net + GeminiFusion). Official code:
github.com/JiaDingCN/GeminiFusion, branch ``3d_object_detection_kitti``, class
``Gemini_PointFusion`` in ``mmdet3d/models/layers/fusion_layers/point_fusion.py`` and
``DynamicVFE_modified`` in ``mmdet3d/models/voxel_encoders/voxel_encoder.py`` (read, not copied).
Host: mmdet3d's ``PointFusion`` (MVX-Net, Sindagi et al., ICRA 2019), which this class subclasses.

Shape shorthand: B samples, P points of the whole batch (P = sum of P_b), C = ``out_channels``,
M = ``mid_channels``, L = number of image levels (``len(img_levels)``).

What one call computes, as the official 3D branch does::

    f_img = img_transform(sample(lateral_convs(img_feats), pts))   (P, C)  PointFusion's sampling
    f_pts = pts_transform(pts_feats)                                (P, C)  Linear + BN1d each
    y_img, y_pts = GeminiFusionAttention(f_img, f_pts)              (P, C)  points are the tokens
    out = w_img * y_img + w_pts * y_pts,  (w_img, w_pts) = softmax(alpha), alpha init (1, 1)
    out = ReLU(out) if activate_out;  out = fuse_conv(out) if fuse_out

Facts of the official branch followed here:

- The two modalities of the GeminiFusion block are a point's sampled image feature (modality a,
  the official ``x0``, updated by ``cross_attn_0_to_1``) and its own LiDAR feature (modality b,
  ``x1``); every point is one token, points attend only to their own two keys (no mixing across
  points or samples, so all P points of the batch go through the block at once).
- Both sides are kept: the output is a learned convex combination of the two updated features
  (softmax of a 2-vector ``alpha`` initialised to ones, so 0.5 / 0.5 at start). Each side keeps
  the block's residual (``y = x + MHA(...)``). The output activation is PointFusion's: ReLU when
  ``activate_out`` (True in the MVX-Net config), then the optional ``fuse_conv``.
- Sampling, lateral convs, ``img_transform``/``pts_transform`` and image dropout are PointFusion's,
  unchanged (inherited). Points whose projection falls outside the image get what ``point_sample``
  gives them with ``padding_mode`` (zeros by default; bilinear taps outside the map read 0) and
  are fused like any other point; points behind the camera are not masked (PointFusion does not
  pass ``valid_flag``). The image features are whatever ``img_feats`` the detector passes.

Deliberate differences from the official branch:

- One fusion layer, after the last VFE layer, in mmdet3d's stock ``DynamicVFE``. The official
  branch also replaces the voxel encoder (``DynamicVFE_modified``) to insert a fusion layer after
  *every* VFE layer (the earlier ones with ``mid_channels = out_channels = pts_channels``), which
  is where most of its +1.0 M parameters come from (five more 256 -> 64 lateral 3x3 convs). As a
  drop-in for stock ``DynamicVFE``'s ``fusion_layer`` this class fuses once; the official
  two-layer encoder is :class:`~mmfusion.models.voxel_encoders.gemini_dynamic_vfe.GeminiDynamicVFE`,
  which builds one of these per VFE layer.
- The attention width is ``out_channels`` (the width both features have after the transforms).
  The official block builds its attention at ``mid_channels`` and applies it to ``out_channels``
  wide features, so it runs only when the two are equal (they are, 128, in its config).
- Initialisation: the fusion block uses ``GeminiFusionAttention``'s init (Linear weights truncated
  normal std 0.02). In the official branch its Linear layers keep PyTorch's default init, because
  MVX-Net's ``init_weights`` never reaches a fusion layer inside ``DynamicVFE`` (a plain
  ``nn.Module``; measured with mmdet3d 1.4), and the same holds for this class's inherited Xavier
  ``init_cfg`` inside a stock MVX-Net.

Checkpoint mapping from an official ``Gemini_PointFusion`` (e.g. its last-VFE-layer fusion layer,
``pts_voxel_encoder.fusion_layer.1.*``): ``lateral_convs``, ``img_transform``, ``pts_transform``,
``alpha`` keep their names; ``cross_attn_0_to_1`` -> ``gemini_fusion.attn_a``, ``cross_attn_1_to_0``
-> ``gemini_fusion.attn_b``, ``relation_judger.0.fc1``/``fc2`` ->
``gemini_fusion.relation_discriminator.0``/``.2``, ``k_noise``/``v_noise`` ->
``gemini_fusion.k_noise``/``v_noise``.
"""
from typing import List, Optional, Union

import torch
import torch.nn.functional as F
from mmdet3d.models.layers.fusion_layers import PointFusion
from mmdet3d.registry import MODELS
from mmdet3d.utils import OptConfigType, OptMultiConfig
from torch import Tensor, nn

from .gemini_fusion import GeminiFusionAttention

__all__ = ['GeminiPointFusion']


@MODELS.register_module()
class GeminiPointFusion(PointFusion):
    """MVX-Net point fusion with a GeminiFusion block between a point and its image feature.

    Drop-in for mmdet3d's ``PointFusion``: in an MVX-Net config, set
    ``model.pts_voxel_encoder.fusion_layer.type='GeminiPointFusion'`` (with
    ``custom_imports=dict(imports=['mmfusion.det3d'])``); all of PointFusion's arguments keep their
    meaning. The output width is ``out_channels`` as with PointFusion, so the rest of the
    detector is unchanged.

    Args:
        img_channels, pts_channels, mid_channels, out_channels, img_levels, coord_type,
        conv_cfg, norm_cfg, act_cfg, init_cfg, activate_out, fuse_out, dropout_ratio, aligned,
        align_corners, padding_mode, lateral_conv: as in mmdet3d's ``PointFusion``.
            ``out_channels`` is also the GeminiFusion block's width C.
        num_heads (int): heads of each direction's attention; must divide ``out_channels``.
            Default 8 (official).
        fusion_cfg (dict, optional): further keyword arguments of
            :class:`~mmfusion.models.fusion.gemini_fusion.GeminiFusionAttention` (its ablation
            switches ``use_relation_discriminator``, ``use_noise``, ``shared_noise``,
            ``relation_scaled_token``). Default None: the official block.

    Raises:
        ValueError: if ``num_heads`` does not divide ``out_channels``, or ``fusion_cfg`` sets
            ``embed_dims``/``num_heads`` (they come from ``out_channels``/``num_heads``).
    """

    def __init__(self,
                 img_channels: Union[List[int], int],
                 pts_channels: int,
                 mid_channels: int,
                 out_channels: int,
                 img_levels: Union[List[int], int] = 3,
                 coord_type: str = 'LIDAR',
                 conv_cfg: OptConfigType = None,
                 norm_cfg: OptConfigType = None,
                 act_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None,
                 activate_out: bool = True,
                 fuse_out: bool = False,
                 dropout_ratio: Union[int, float] = 0,
                 aligned: bool = True,
                 align_corners: bool = True,
                 padding_mode: str = 'zeros',
                 lateral_conv: bool = True,
                 num_heads: int = 8,
                 fusion_cfg: Optional[dict] = None) -> None:
        super().__init__(
            img_channels=img_channels,
            pts_channels=pts_channels,
            mid_channels=mid_channels,
            out_channels=out_channels,
            img_levels=img_levels,
            coord_type=coord_type,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            init_cfg=init_cfg,
            activate_out=activate_out,
            fuse_out=fuse_out,
            dropout_ratio=dropout_ratio,
            aligned=aligned,
            align_corners=align_corners,
            padding_mode=padding_mode,
            lateral_conv=lateral_conv)
        fusion_cfg = dict(fusion_cfg or {})
        if {'embed_dims', 'num_heads'} & set(fusion_cfg):
            raise ValueError('GeminiPointFusion: fusion_cfg must not set embed_dims or num_heads '
                             '(they are out_channels and num_heads)')
        if out_channels % num_heads:
            raise ValueError(f'GeminiPointFusion: num_heads ({num_heads}) must divide '
                             f'out_channels ({out_channels})')
        self.out_channels = out_channels
        # Modality a = the point's sampled image feature, b = its LiDAR feature (official x0, x1).
        self.gemini_fusion = GeminiFusionAttention(out_channels, num_heads=num_heads,
                                                   **fusion_cfg)
        # Official ``alpha``: logits of the weights of the updated image and point features.
        self.alpha = nn.Parameter(torch.ones(2))

    def forward(self, img_feats: List[Tensor], pts: List[Tensor], pts_feats: Tensor,
                img_metas: List[dict]) -> Tensor:
        """Fuse each point's LiDAR feature with the image feature at its projection.

        Args:
            img_feats: Image feature maps, one per level, each (B, C_l, H_l, W_l); the levels
                ``img_levels`` are used (MVX-Net: the FPN outputs).
            pts: Points of each sample, B tensors (P_b, >=3), x, y, z in metres in
                ``coord_type`` coordinates (after the pipeline's 3D augmentation, which
                ``point_sample`` reverses from the metas).
            pts_feats: Per-point features of the whole batch, (P, pts_channels), in the order
                of ``pts`` concatenated.
            img_metas: B dicts with the projection (``lidar2img`` for LIDAR) and image
                transform metas (``scale_factor``, ``flip``, ``img_shape``, ``input_shape``, and
                the 3D augmentation keys read by ``apply_3d_transformation``).

        Returns:
            Tensor: Fused per-point features, (P, out_channels).

        Raises:
            ValueError: if ``pts_feats`` is not (P, pts_channels) with P the number of points.
        """
        num_points = sum(p.shape[0] for p in pts)
        if pts_feats.dim() != 2 or pts_feats.shape[0] != num_points:
            raise ValueError(f'GeminiPointFusion: pts_feats must be (P, C) with P = {num_points} '
                             f'points in pts, got {tuple(pts_feats.shape)}')
        img_pts = self.obtain_mlvl_feats(img_feats, pts, img_metas)  # (P, L * M)
        img_pre_fuse = self.img_transform(img_pts)  # (P, C)
        if self.training and self.dropout_ratio > 0:
            img_pre_fuse = F.dropout(img_pre_fuse, self.dropout_ratio)
        pts_pre_fuse = self.pts_transform(pts_feats)  # (P, C)

        # Points are tokens and interact only with themselves: one "sample" of P tokens.
        y_img, y_pts = self.gemini_fusion(img_pre_fuse.unsqueeze(0), pts_pre_fuse.unsqueeze(0))
        weights = self.alpha.softmax(dim=0)
        fuse_out = weights[0] * y_img.squeeze(0) + weights[1] * y_pts.squeeze(0)
        if self.activate_out:
            fuse_out = F.relu(fuse_out)
        if self.fuse_out:
            fuse_out = self.fuse_conv(fuse_out)
        return fuse_out
