"""Dynamic VFE with a GeminiFusion layer after *every* VFE layer (GeminiFusion's KITTI model).

Paper: D. Jia et al., "GeminiFusion", ICML 2024 (arXiv 2406.01210), KITTI 3D detection with
MVX-Net. Official code read: ``DynamicVFE_modified`` in
``mmdet3d/models/voxel_encoders/voxel_encoder.py`` and its config ``geminifusion_mvxnet`` of
github.com/JiaDingCN/GeminiFusion, branch ``3d_object_detection_kitti``. Host: mmdet3d's
``DynamicVFE`` (DV-SECOND / MVX-Net), which this class subclasses.

Shape shorthand: P points of the batch, C_k the width of VFE layer k (``feat_channels[k]``),
K = ``len(feat_channels)`` VFE layers (2 in MVX-Net: 64, 64).

What it computes (stock ``DynamicVFE.forward``, with a fusion after each VFE layer)::

    f = decorate(points)                                  (P, 4 + 3 + 3) as the stock VFE
    for k in 0 .. K-1:
        p = VFE_k(f)                                      Linear + BN1d + ReLU, (P, C_k)
        p = fusion_k(img_feats, points, p, img_metas)     (P, C_k) for k < K-1, (P, out) last
        v = scatter_max(p)                                voxel features
        f = [p, v at each point]  (k < K-1)               input of the next layer

``fusion_k`` for k < K-1 is the configured fusion layer with ``mid_channels = out_channels =
pts_channels`` (the official rule: in MVX-Net a 64-wide GeminiPointFusion with five 256 -> 64
lateral 3x3 convs), the last one is the configured layer itself (128 wide in MVX-Net). No image
features (``img_feats is None``): no fusion, the stock LiDAR-only encoder.

Implementation: the stock forward runs unchanged; a forward hook on each VFE layer applies
``fusion_layers[k]`` to its output, with the image inputs of the current call (held only during
the call). Parameter names: ``vfe_layers`` as stock, ``fusion_layers.<k>`` (official
``fusion_layer.<k>``).

Differences from the official branch: the fusion layers are
:class:`~mmfusion.models.fusion.gemini_point_fusion.GeminiPointFusion` (see its docstring for its
own differences: attention width ``out_channels``, vectorised over points); the stock
``fusion_layer`` argument is taken over (the stock encoder would fuse once more after the last
layer).
"""
import copy
from typing import List, Optional, Sequence

from mmdet3d.models.voxel_encoders import DynamicVFE
from mmdet3d.registry import MODELS
from torch import Tensor, nn

__all__ = ['GeminiDynamicVFE']


@MODELS.register_module()
class GeminiDynamicVFE(DynamicVFE):
    """mmdet3d ``DynamicVFE`` with one point-fusion layer after each VFE layer.

    Args:
        fusion_layer (dict): Config of the fusion after the *last* VFE layer (e.g.
            ``dict(type='GeminiPointFusion', img_channels=256, pts_channels=64,
            mid_channels=128, out_channels=128, img_levels=[0, 1, 2, 3, 4])``); each earlier
            layer gets a copy with ``mid_channels = out_channels = pts_channels``.
        **kwargs: The other arguments of mmdet3d's ``DynamicVFE`` (``in_channels``,
            ``feat_channels``, ``with_cluster_center``, ``with_voxel_center``, ``voxel_size``,
            ``point_cloud_range``, ``norm_cfg``, ``mode``, ``return_point_feats``, ...).

    Raises:
        ValueError: If ``fusion_layer`` is missing, or ``pts_channels`` differs from the
            width of a VFE layer it follows.
    """

    def __init__(self, fusion_layer: Optional[dict] = None, **kwargs):
        super().__init__(fusion_layer=None, **kwargs)
        if fusion_layer is None:
            raise ValueError(f'{self.__class__.__name__} needs a fusion_layer config')
        widths = [layer[0].out_features for layer in self.vfe_layers]
        if any(w != fusion_layer['pts_channels'] for w in widths):
            raise ValueError(f'{self.__class__.__name__}: fusion_layer.pts_channels '
                             f'({fusion_layer["pts_channels"]}) must equal every VFE width '
                             f'{widths}')
        layers = []
        for k in range(self.num_vfe):
            cfg = copy.deepcopy(fusion_layer)
            if k < self.num_vfe - 1:
                cfg.update(mid_channels=cfg['pts_channels'], out_channels=cfg['pts_channels'])
            layers.append(MODELS.build(cfg))
        self.fusion_layers = nn.ModuleList(layers)
        self._image_inputs = None
        for k, vfe in enumerate(self.vfe_layers):
            vfe.register_forward_hook(self._fusion_hook(k))

    def _fusion_hook(self, k: int):
        def hook(module, args, point_feats):
            if self._image_inputs is None:
                return point_feats
            img_feats, points, img_metas = self._image_inputs
            return self.fusion_layers[k](img_feats, points, point_feats, img_metas)
        return hook

    def forward(self, features: Tensor, coors: Tensor,
                points: Optional[Sequence[Tensor]] = None,
                img_feats: Optional[List[Tensor]] = None,
                img_metas: Optional[List[dict]] = None, *args, **kwargs):
        """As mmdet3d's ``DynamicVFE.forward``: features (P, 4), coors (P, 4) (batch, z, y, x);
        ``points`` the per-sample point clouds, ``img_feats`` the image levels (B, C, H, W),
        ``img_metas`` the samples' meta (``lidar2img``, ...). Returns (voxel features,
        voxel coors), or the point features with ``return_point_feats``."""
        self._image_inputs = None if img_feats is None else (img_feats, points, img_metas)
        try:
            return super().forward(features, coors, points, None, img_metas, *args, **kwargs)
        finally:
            self._image_inputs = None
