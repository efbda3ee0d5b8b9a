"""Voxel RoI pooling of Voxel R-CNN: RoI grid-point features from multi-scale sparse voxels.

Paper: J. Deng et al., "Voxel R-CNN: Towards High Performance Voxel-based 3D Object Detection",
AAAI 2021, Sec. 3.2 "Voxel RoI pooling": each RoI is divided into G x G x G sub-voxels whose
centres are the grid points; for each grid point the non-empty voxels of a sparse backbone stage
within a query range and radius are found (voxel query, :func:`mmfusion.ops.voxel_query`) and
aggregated by a PointNet module, ``eta_i = max_k Psi([v_i^k - g_i ; phi_i^k])``, and the
"accelerated PointNet module" of the same section, which splits the first linear layer of Psi
into a positional part applied to the relative coordinates and a feature part applied once per
voxel before grouping (``pre_mlp``). Features of several stages are concatenated. SSLFusion
(arXiv 2504.05170) uses it unchanged on its fused sparse backbone. The layer layout follows the
official code (github.com/TLDBN/SSLFsion, ``pcdet/models/roi_heads/voxelrcnn_head.py``,
``pcdet/ops/pointnet2/pointnet2_stack/voxel_pool_modules.py``), read and not copied.

Shape shorthand: N RoIs of the whole batch, G grid points per RoI edge (P = G^3 per RoI),
M_s non-empty voxels of scale s, C_s its channels, H_s the hidden width and O_s the output width
of its MLP, S = nsample, C_out = sum of O_s.

Per scale s, for grid points g (N * P, 3) metres::

    phi   = features of scale s                                  (M_s, C_s)
    pre_mlp=True  (official):
        f_k = BN(W_f phi)[idx]                  grouped voxel features   (N * P, S, H_s)
        p_k = BN(W_p (v[idx] - g))              positional term          (N * P, S, H_s)
        h   = ReLU(f_k + p_k)
    pre_mlp=False (the paper's plain PointNet):
        h   = ReLU(BN(W [v[idx] - g ; phi[idx]]))                        (N * P, S, H_s)
    eta   = max_k h   (or mean_k)                                      (N * P, H_s)
    out_s = ReLU(BN(W_o eta))                                          (N * P, O_s)

Empty queries (no voxel in range) have their grouped features and relative coordinates zeroed
before the MLP, as in the official code, so their output is a learned constant (exactly zero
for freshly initialised BatchNorm in eval mode); :meth:`VoxelRoIGridPooling.pool_scale` returns
the empty mask as well.

RoI convention: mmdet3d LiDAR boxes ``(x, y, z, dx, dy, dz, yaw)`` with the bottom-centre
origin (0.5, 0.5, 0) (OpenPCDet uses the gravity centre: the grid is built around
``z + dz / 2`` here), yaw in radians counter-clockwise from +x, the rotation of mmdet3d's
``rotation_3d_in_axis(..., axis=2)``. Grid point (i, j, k), i along dx, has local coordinates
``((i + 0.5) / G - 0.5) * (dx, dy, dz)`` and the flat index ``(i * G + j) * G + k``.

Deliberate differences from the official code:

- One query configuration per scale (official ``NeighborVoxelSAModuleMSG`` allows several radii
  per scale; Voxel R-CNN's and SSLFusion's configs use one).
- The voxel query is :func:`mmfusion.ops.voxel_query` (identical results, both devices) and the
  grid points' voxel is computed inside it with the same floor rule.
- The output is laid out (N, G, G, G, C_out) as mmdet3d's ``Batch3DRoIGridExtractor`` gives it to
  ``PVRCNNBBoxHead`` (official: (N, P, C_out) flattened grid-major); weights of the first shared
  FC layer of an official checkpoint would need their input order permuted.
- Linear layers in place of 1 x 1 convolutions (same function), Kaiming-normal initialisation as
  official via ``init_cfg``.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmcv.cnn import build_norm_layer
from mmdet3d.registry import MODELS
from mmdet3d.structures.bbox_3d import rotation_3d_in_axis
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmfusion.ops.voxel_centers import voxel_centers
from mmfusion.ops.voxel_query import voxel_query

__all__ = ['VoxelRoIGridPooling', 'NeighborVoxelPooling']


def _linear_bn(in_channels: int, out_channels: int, norm_cfg: dict, relu: bool) -> nn.Sequential:
    layers = [nn.Linear(in_channels, out_channels, bias=False),
              build_norm_layer(norm_cfg, out_channels)[1]]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class NeighborVoxelPooling(nn.Module):
    """Voxel query + PointNet aggregation on one sparse scale (one term of the module docstring).

    Args:
        in_channels (int): C_s, channels of the scale's voxel features.
        mlp_channels (Sequence[int]): (H_s, O_s), hidden and output width. Official (32, 32).
        query_range (Sequence[int]): (rz, ry, rx) voxels of this scale. Official (4, 4, 4).
        radius (float): metres. Official 0.2 / 0.4 / 0.8 / 1.6 at strides 1 / 2 / 4 / 8.
        nsample (int): voxels per grid point. Official 16.
        pre_mlp (bool): the accelerated form (feature transform before grouping). Default True.
        pool_mode (str): 'max' (official) or 'avg' over the S samples.
        norm_cfg (dict): normalisation of every layer. Default BN1d (eps 1e-5, momentum 0.1).
    """

    def __init__(self, in_channels: int, mlp_channels: Sequence[int],
                 query_range: Sequence[int] = (4, 4, 4), radius: float = 0.2,
                 nsample: int = 16, pre_mlp: bool = True, pool_mode: str = 'max',
                 norm_cfg: dict = dict(type='BN1d', eps=1e-5, momentum=0.1)):
        super().__init__()
        if len(mlp_channels) != 2:
            raise ValueError('NeighborVoxelPooling: mlp_channels must be (hidden, out), got '
                             f'{mlp_channels}')
        if pool_mode not in ('max', 'avg'):
            raise ValueError(f"NeighborVoxelPooling: pool_mode must be 'max' or 'avg', got "
                             f'{pool_mode!r}')
        hidden, out = mlp_channels
        self.query_range = tuple(int(r) for r in query_range)
        self.radius = float(radius)
        self.nsample = int(nsample)
        self.pre_mlp = pre_mlp
        self.pool_mode = pool_mode
        if pre_mlp:
            self.feature_mlp = _linear_bn(in_channels, hidden, norm_cfg, relu=False)
            self.position_mlp = _linear_bn(3, hidden, norm_cfg, relu=False)
        else:
            self.grouped_mlp = _linear_bn(3 + in_channels, hidden, norm_cfg, relu=True)
        self.out_mlp = _linear_bn(hidden, out, norm_cfg, relu=True)

    def forward(self, grid_xyz: Tensor, grid_batch: Tensor, voxel_indices: Tensor,
                voxel_feats: Tensor, voxel_size: Sequence[float],
                point_cloud_range: Sequence[float], stride: int) -> Tuple[Tensor, Tensor]:
        """Pool one scale at the grid points.

        Args:
            grid_xyz (Tensor): (Q, 3) grid points, metres. grid_batch (Tensor): (Q,) int sample.
            voxel_indices (Tensor): (M_s, 4) int (batch, z, y, x) at ``stride``.
            voxel_feats (Tensor): (M_s, C_s).
            voxel_size, point_cloud_range: geometry of the input voxel grid (metres).
            stride (int): the scale's downsampling w.r.t. the input voxel grid.

        Returns:
            tuple[Tensor, Tensor]: features (Q, O_s) and ``empty`` (Q,) bool.
        """
        voxel_xyz = voxel_centers(voxel_indices, voxel_size, point_cloud_range, stride)
        voxel_xyz = voxel_xyz.to(grid_xyz.dtype)
        idx, empty = voxel_query(grid_xyz, grid_batch, voxel_xyz, voxel_indices, voxel_size,
                                 point_cloud_range, self.query_range, self.radius, self.nsample,
                                 stride)
        num_query, nsample = idx.shape
        num_voxels = voxel_feats.shape[0]
        # empty queries gather row M, an appended zero row (cheaper than masking (Q, S, H))
        safe_idx = torch.where(empty.unsqueeze(1), torch.full_like(idx, num_voxels), idx)
        zero_row = voxel_xyz.new_zeros(1, 3)
        rel_xyz = torch.cat([voxel_xyz, zero_row])[safe_idx] - grid_xyz.unsqueeze(1)
        rel_xyz = torch.where(empty.view(-1, 1, 1), zero_row, rel_xyz)  # (Q, S, 3)
        if self.pre_mlp:
            hidden_channels = self.out_mlp[0].in_features
            feats = voxel_feats.new_zeros(1, hidden_channels)
            if num_voxels > 0:
                feats = torch.cat([self.feature_mlp(voxel_feats), feats])
            # explicit sizes (no -1): Q may be 0 (a batch without RoIs)
            pos = self.position_mlp(rel_xyz.reshape(-1, 3)).view(num_query, nsample,
                                                                 hidden_channels)
            hidden = torch.relu(feats[safe_idx] + pos)  # (Q, S, H)
        else:
            grouped = torch.cat([voxel_feats, voxel_feats.new_zeros(1, voxel_feats.shape[1])])
            grouped = torch.cat([rel_xyz, grouped[safe_idx]], dim=-1)
            hidden = self.grouped_mlp(grouped.reshape(num_query * nsample, grouped.shape[-1]))
            hidden = hidden.view(num_query, nsample, hidden.shape[-1])
        if self.pool_mode == 'max':
            pooled = hidden.max(dim=1).values
        else:
            pooled = hidden.mean(dim=1)
        return self.out_mlp(pooled), empty


@MODELS.register_module()
class VoxelRoIGridPooling(BaseModule):
    """Voxel R-CNN's RoI extractor: G^3 grid points per RoI, pooled from several sparse scales.

    Args:
        feature_sources (Sequence[str]): names of the scales in
            ``feats_dict['multi_scale_3d_feats']`` to pool, e.g.
            ('x_conv1', 'x_conv2', 'x_conv3', 'x_conv4').
        in_channels (Sequence[int]): C_s per source.
        voxel_size (Sequence[float]): (dx, dy, dz) metres of the input voxel grid.
        point_cloud_range (Sequence[float]): (x_min, y_min, z_min, x_max, y_max, z_max) metres.
        grid_size (int): G. Official 6.
        mlp_channels (Sequence[Sequence[int]]): (H_s, O_s) per source. Official (32, 32) each.
        query_ranges (Sequence[Sequence[int]]): (rz, ry, rx) per source. Official (4, 4, 4).
        radii (Sequence[float]): metres per source. Official (0.2, 0.4, 0.8, 1.6).
        nsamples (Sequence[int]): per source. Official 16 each.
        pre_mlp (bool): accelerated PointNet module (official True).
        pool_mode (str): 'max' (official) or 'avg'.
        norm_cfg (dict): normalisation of the MLPs. Default BN1d (eps 1e-5, momentum 0.1).
        init_cfg (dict, optional): default Kaiming-normal (fan-in) for the linear layers, as
            the official code.

    Raises:
        ValueError: if the per-source lists do not all have ``len(feature_sources)`` entries.
    """

    def __init__(self,
                 feature_sources: Sequence[str],
                 in_channels: Sequence[int],
                 voxel_size: Sequence[float],
                 point_cloud_range: Sequence[float],
                 grid_size: int = 6,
                 mlp_channels: Optional[Sequence[Sequence[int]]] = None,
                 query_ranges: Optional[Sequence[Sequence[int]]] = None,
                 radii: Sequence[float] = (0.2, 0.4, 0.8, 1.6),
                 nsamples: Optional[Sequence[int]] = None,
                 pre_mlp: bool = True,
                 pool_mode: str = 'max',
                 norm_cfg: dict = dict(type='BN1d', eps=1e-5, momentum=0.1),
                 init_cfg: Optional[dict] = dict(
                     type='Kaiming', layer='Linear', mode='fan_in', nonlinearity='relu',
                     distribution='normal')):
        super().__init__(init_cfg=init_cfg)
        num = len(feature_sources)
        mlp_channels = mlp_channels if mlp_channels is not None else [(32, 32)] * num
        query_ranges = query_ranges if query_ranges is not None else [(4, 4, 4)] * num
        nsamples = nsamples if nsamples is not None else [16] * num
        for name, value in (('in_channels', in_channels), ('mlp_channels', mlp_channels),
                            ('query_ranges', query_ranges), ('radii', radii),
                            ('nsamples', nsamples)):
            if len(value) != num:
                raise ValueError(f'VoxelRoIGridPooling: {name} needs one entry per feature '
                                 f'source ({num}: {list(feature_sources)}), got {len(value)}')
        if len(voxel_size) != 3 or len(point_cloud_range) != 6:
            raise ValueError('VoxelRoIGridPooling: voxel_size must be (dx, dy, dz) and '
                             'point_cloud_range (x/y/z min, x/y/z max), got '
                             f'{voxel_size}, {point_cloud_range}')
        self.feature_sources = list(feature_sources)
        self.voxel_size = [float(v) for v in voxel_size]
        self.point_cloud_range = [float(v) for v in point_cloud_range]
        self.grid_size = int(grid_size)
        self.pool_layers = nn.ModuleList(
            NeighborVoxelPooling(c, m, q, r, s, pre_mlp, pool_mode, norm_cfg)
            for c, m, q, r, s in zip(in_channels, mlp_channels, query_ranges, radii, nsamples))
        self.out_channels = sum(int(m[-1]) for m in mlp_channels)

    def roi_grid_points(self, rois: Tensor) -> Tensor:
        """Grid points of RoIs in the LiDAR frame.

        Args:
            rois (Tensor): (N, 7) LiDAR boxes (x, y, z_bottom, dx, dy, dz, yaw), metres/radians
                (extra columns ignored).

        Returns:
            Tensor: (N, G^3, 3) metres, flat index ``(i * G + j) * G + k`` for grid cell
            (i, j, k) along (dx, dy, dz).
        """
        g = self.grid_size
        cells = (torch.arange(g, device=rois.device, dtype=rois.dtype) + 0.5) / g - 0.5
        local = torch.stack(torch.meshgrid(cells, cells, cells, indexing='ij'), -1).view(-1, 3)
        local = local.unsqueeze(0) * rois[:, None, 3:6]  # (N, P, 3)
        rotated = rotation_3d_in_axis(local, rois[:, 6], axis=2)
        centre = rois[:, :3].clone()
        centre[:, 2] = centre[:, 2] + rois[:, 5] / 2  # bottom centre -> gravity centre
        return rotated + centre.unsqueeze(1)

    def pool_scale(self, level: int, sparse_tensor, stride: int, grid_xyz: Tensor,
                   grid_batch: Tensor) -> Tuple[Tensor, Tensor]:
        """Pool one configured scale.

        Args:
            level (int): position in ``feature_sources``.
            sparse_tensor: spconv ``SparseConvTensor`` (or anything with ``indices`` (M, 4)
                int (batch, z, y, x) and ``features`` (M, C))).
            stride (int): the scale's downsampling w.r.t. the input voxel grid.
            grid_xyz (Tensor): (Q, 3) metres. grid_batch (Tensor): (Q,) int.

        Returns:
            tuple[Tensor, Tensor]: (Q, O_s) features and (Q,) bool empty mask.
        """
        feats = sparse_tensor.features
        return self.pool_layers[level](grid_xyz.to(feats.dtype), grid_batch,
                                       sparse_tensor.indices, feats, self.voxel_size,
                                       self.point_cloud_range, int(stride))

    def forward(self, multi_scale_3d_feats: Dict[str, object],
                multi_scale_3d_strides: Dict[str, int], rois: Tensor) -> Tensor:
        """Pooled grid features of RoIs.

        Args:
            multi_scale_3d_feats (dict[str, SparseConvTensor]): scale name -> sparse tensor
                (indices (M, 4) int (batch, z, y, x), features (M, C)).
            multi_scale_3d_strides (dict[str, int]): scale name -> stride w.r.t. the input
                voxel grid.
            rois (Tensor): (N, 8) ``[batch, x, y, z_bottom, dx, dy, dz, yaw]`` as mmdet3d's
                ``bbox3d2roi`` builds them.

        Returns:
            Tensor: (N, G, G, G, C_out).

        Raises:
            KeyError: if a configured source is missing from either dict.
            ValueError: if ``rois`` is not (N, 8).
        """
        if rois.dim() != 2 or rois.shape[1] != 8:
            raise ValueError('VoxelRoIGridPooling: rois must be (N, 8) [batch, x, y, z, dx, '
                             f'dy, dz, yaw], got {tuple(rois.shape)}')
        for name in self.feature_sources:
            if name not in multi_scale_3d_feats or name not in multi_scale_3d_strides:
                raise KeyError(
                    f'VoxelRoIGridPooling: feature source {name!r} not in '
                    f"multi_scale_3d_feats ({sorted(multi_scale_3d_feats)}) and "
                    f"multi_scale_3d_strides ({sorted(multi_scale_3d_strides)})")
        g = self.grid_size
        grid_xyz = self.roi_grid_points(rois[:, 1:]).reshape(-1, 3)
        grid_batch = rois[:, 0].long().repeat_interleave(g**3)
        pooled: List[Tensor] = []
        for level, name in enumerate(self.feature_sources):
            feats, _ = self.pool_scale(level, multi_scale_3d_feats[name],
                                       multi_scale_3d_strides[name], grid_xyz, grid_batch)
            pooled.append(feats)
        pooled = torch.cat(pooled, dim=-1)
        return pooled.view(rois.shape[0], g, g, g, pooled.shape[-1])
