"""SAF, the Scale-Aligned Fusion of SSLFusion: SAM + LFM at each stage of a sparse 3D backbone,
each stage with the image feature level of matching receptive field.

Paper: B. Ding, J. Xie, J. Nie, J. Cao, "SSLFusion: Scale & Space Aligned Latent Fusion Model for
Multimodal 3D Object Detection", arXiv 2504.05170, Sec. "Scale-Aligned Fusion Strategy": the
features of every stage of the 3D sparse backbone are fused with the 2D features of the stage of
matching receptive field (and, in the 3D pyramid, again on the way up). Official code:
github.com/TLDBN/SSLFsion, ``pcdet/models/backbones_3d/sslfusion_backbone.py``
(``SSLFusionBackBone8x``: one ``SSLFusion`` layer after each of conv1-conv4 and after each
decoder stage; voxel strides 1, 2, 4, 8 fused with image FPN levels 0, 1, 2, 3; ``mid_channels``
32, 64, 128, 128; 3x3 conv + BN + ReLU lateral convs from the 256-channel FPN to
``mid_channels``) and ``pcdet/models/backbones_2d/fuser/SSLFusion.py`` (the layer), read to settle
the details and not copied.

Shape shorthand: M voxels of a stage (whole batch), C_v their channels, C_m the fusion width
(``mid_channels``), C_img the channels of the image feature levels, B samples.

One stage (:class:`SSLFusionLayer`), on a spconv ``SparseConvTensor`` x::

    centres = voxel_centers(x.indices, voxel_size, point_cloud_range, voxel_stride)  (M, 3) m
    f_pts   = BN(Linear(x.features))                       (M, C_m)   official voxel_transform
    level   = lateral_conv(img_feats[l])                   (B, C_m, H_l, W_l), 3x3 conv BN ReLU
    f_img, valid = SAM(centres, x.indices[:, 0], level, img_metas, stride=img_strides[l])
    out     = x.replace_feature(LFM(f_pts, f_img, x.indices[:, 0]))   (M, C_out)

:class:`ScaleAlignedFusion` holds one such layer per stage and the stage -> image level map
(``img_levels[i]`` for stage i, with ``img_strides[level]`` input pixels per feature cell);
the backbone calls ``saf(x, stage=i, img_feats=..., img_metas=...)`` after its stage i.

Differences from the official code (besides those of ``space_alignment.py`` and
``latent_fusion.py``): a standalone SAF holds one lateral conv per layer, while the official
backbone holds one per image level, shared by its encoder and decoder layers (so does
:class:`~mmfusion.models.middle_encoders.SSLFusionSparseUNet` by default, building its layers
with ``lateral_conv=False``); the image levels are sampled at their own stride instead of being
upsampled to the full image size first; the backbone itself (encoder, decoder with the 3D
pyramid additions) is not part of this module. Works on CPU (this module runs no sparse
convolution itself; spconv layers around it need ``ConvAlgo.Native`` on CPU, see
``mmfusion/ops/spconv_algo.py``).

Parameter names from an official ``SSLFusion`` layer (same shapes; note that official weights
were trained with the bugs listed in ``latent_fusion.py``, so they do not compute the same
function here): ``voxel_transform`` -> ``voxel_transform``; ``depth_emb`` ->
``sam.depth_embedding`` (columns of ``.0.weight`` reversed: official input order z, y, x);
``shared_layers`` -> ``lfm.shared_mlp``; ``corss_gnn_layer.modal{1,2}_{v2l,l2v}`` ->
``lfm.{pts,img}_{v2l,l2v}``; ``attention_lidar``/``attention_image`` ->
``lfm.gate_pts``/``lfm.gate_img``; ``fuse_conv`` -> ``lfm.fuse``; the backbone's
``lateral_convs_fpn.{i}.0``/``.1`` -> ``lateral_convs.{i}.conv``/``.bn`` of
``SSLFusionSparseUNet`` (or ``lateral_conv.conv``/``.bn`` of a layer that has its own; our conv
has no bias, the BN after it absorbs one).
"""
from typing import List, Optional, Sequence, Tuple, Union

from mmcv.cnn import ConvModule, build_norm_layer
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmfusion.ops.voxel_centers import voxel_centers

from .latent_fusion import LatentCrossModalFusion
from .space_alignment import SpaceAlignment

__all__ = ['SSLFusionLayer', 'ScaleAlignedFusion']

_BN1D = dict(type='BN1d', eps=1e-3, momentum=0.01)
_BN2D = dict(type='BN2d', eps=1e-3, momentum=0.01)


def _replace_features(x, features: Tensor):
    """spconv 2.x ``replace_feature``; older sparse tensors get ``features`` assigned."""
    if hasattr(x, 'replace_feature'):
        return x.replace_feature(features)
    x.features = features
    return x


@MODELS.register_module()
class SSLFusionLayer(BaseModule):
    """One SSLFusion fusion layer: SAM + LFM on the voxels of one sparse-backbone stage.

    Args:
        voxel_channels (int): C_v of the stage's sparse features.
        mid_channels (int): C_m, width of SAM's image features and of the LFM.
        img_channels (int): C_img of the image level this layer reads.
        voxel_size (Sequence[float]): (dx, dy, dz) metres of the input voxel grid.
        point_cloud_range (Sequence[float]): (x_min, y_min, z_min, x_max, y_max, z_max) metres.
        voxel_stride (int): stride of the stage w.r.t. the input voxel grid.
        out_channels (int, optional): C_out. Default C_v (official: the next stage's input).
        lateral_conv (bool): 3x3 conv + BN + ReLU C_img -> C_m on the image level (official).
            If False, C_img must equal C_m.
        sam_cfg (dict, optional): keyword arguments of :class:`SpaceAlignment`.
        lfm_cfg (dict, optional): keyword arguments of :class:`LatentCrossModalFusion`
            (``channels`` and ``out_channels`` are set here).
        norm_cfg (dict): norm of the voxel transform. Default BN1d(eps=1e-3, momentum=0.01).
        lateral_norm_cfg (dict): norm of the lateral conv. Default BN2d(eps=1e-3, momentum=0.01).
        init_cfg (dict, optional): mmengine initialisation config.

    Raises:
        ValueError: if ``lateral_conv`` is False and C_img != C_m.
    """

    def __init__(self,
                 voxel_channels: int,
                 mid_channels: int,
                 img_channels: int,
                 voxel_size: Sequence[float],
                 point_cloud_range: Sequence[float],
                 voxel_stride: int = 1,
                 out_channels: Optional[int] = None,
                 lateral_conv: bool = True,
                 sam_cfg: Optional[dict] = None,
                 lfm_cfg: Optional[dict] = None,
                 norm_cfg: dict = _BN1D,
                 lateral_norm_cfg: dict = _BN2D,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if not lateral_conv and img_channels != mid_channels:
            raise ValueError(f'lateral_conv=False needs img_channels ({img_channels}) == '
                             f'mid_channels ({mid_channels})')
        if len(voxel_size) != 3 or len(point_cloud_range) != 6:
            raise ValueError('voxel_size must have 3 and point_cloud_range 6 values, got '
                             f'{voxel_size} and {point_cloud_range}')
        self.voxel_size = list(voxel_size)
        self.point_cloud_range = list(point_cloud_range)
        self.voxel_stride = voxel_stride
        out_channels = voxel_channels if out_channels is None else out_channels
        self.voxel_transform = nn.Sequential(
            nn.Linear(voxel_channels, mid_channels), build_norm_layer(norm_cfg, mid_channels)[1])
        self.lateral_conv = ConvModule(
            img_channels, mid_channels, 3, padding=1, norm_cfg=lateral_norm_cfg,
            act_cfg=dict(type='ReLU')) if lateral_conv else None
        self.sam = SpaceAlignment(**(sam_cfg or {}))
        lfm_cfg = dict(lfm_cfg or {}, channels=mid_channels, out_channels=out_channels)
        self.lfm = LatentCrossModalFusion(**lfm_cfg)

    def image_features(self, x, img_feat: Tensor, img_metas: List[dict],
                       img_stride: float) -> Tuple[Tensor, Tensor]:
        """SAM on the stage's voxels: ((M, C_m) depth-weighted image features, (M,) valid)."""
        centres = voxel_centers(x.indices, self.voxel_size, self.point_cloud_range,
                                self.voxel_stride)
        if self.lateral_conv is not None:
            img_feat = self.lateral_conv(img_feat)
        return self.sam(centres, x.indices[:, 0], img_feat, img_metas, stride=img_stride)

    def forward(self, x, img_feat: Tensor, img_metas: List[dict], img_stride: float):
        """Fuse one stage.

        Args:
            x (SparseConvTensor): M voxels, ``indices`` (M, 4) (batch, z, y, x), ``features``
                (M, C_v), in the augmented LiDAR frame.
            img_feat (Tensor): (B, C_img, H_l, W_l) the matching image level.
            img_metas (list[dict]): B ``Det3DDataSample.metainfo`` dicts.
            img_stride (float): input pixels per cell of ``img_feat``.

        Returns:
            SparseConvTensor: same indices, features (M, C_out).
        """
        f_img, _ = self.image_features(x, img_feat, img_metas, img_stride)
        f_pts = self.voxel_transform(x.features)
        fused = self.lfm(f_pts, f_img, x.indices[:, 0].long(), batch_size=x.batch_size)
        return _replace_features(x, fused)


@MODELS.register_module()
class ScaleAlignedFusion(BaseModule):
    """SAF: one :class:`SSLFusionLayer` per backbone stage, each on its matching image level.

    Args:
        voxel_channels (Sequence[int]): C_v of each stage. Default official encoder
            (16, 32, 64, 64).
        mid_channels (Sequence[int]): C_m of each stage. Default official (32, 64, 128, 128).
        voxel_strides (Sequence[int]): stride of each stage w.r.t. the input voxel grid.
            Default (1, 2, 4, 8).
        img_levels (Sequence[int]): image level (index into ``img_feats``) of each stage.
            Default (0, 1, 2, 3) (official: voxel strides 1/2/4/8 -> FPN levels 0/1/2/3).
        img_strides (Sequence[float]): input pixels per feature cell of each image level.
            Default (8, 16, 32, 64, 128): the FPN SSLFusion uses (official ``NECK``: ResNet
            C3-C5 with ``START_LEVEL`` 1 and two extra levels, ``NUM_OUTS`` 5); give the
            strides of the FPN actually used (e.g. (4, 8, 16, 32) for P2-P5).
        img_channels (int | Sequence[int]): C_img of the image levels. Default 256.
        voxel_size (Sequence[float]): metres. Default KITTI SECOND (0.05, 0.05, 0.1).
        point_cloud_range (Sequence[float]): metres. Default KITTI (0, -40, -3, 70.4, 40, 1).
        out_channels (Sequence[int], optional): C_out of each stage. Default ``voxel_channels``.
        layer_cfg (dict, optional): further keyword arguments of every :class:`SSLFusionLayer`
            (``sam_cfg``, ``lfm_cfg``, ``lateral_conv``, norms).
        init_cfg (dict, optional): mmengine initialisation config.

    Raises:
        ValueError: on per-stage lists of different lengths or a level without a stride.
    """

    def __init__(self,
                 voxel_channels: Sequence[int] = (16, 32, 64, 64),
                 mid_channels: Sequence[int] = (32, 64, 128, 128),
                 voxel_strides: Sequence[int] = (1, 2, 4, 8),
                 img_levels: Sequence[int] = (0, 1, 2, 3),
                 img_strides: Sequence[float] = (8, 16, 32, 64, 128),
                 img_channels: Union[int, Sequence[int]] = 256,
                 voxel_size: Sequence[float] = (0.05, 0.05, 0.1),
                 point_cloud_range: Sequence[float] = (0, -40, -3, 70.4, 40, 1),
                 out_channels: Optional[Sequence[int]] = None,
                 layer_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        out_channels = voxel_channels if out_channels is None else out_channels
        stage_lists = dict(voxel_channels=voxel_channels, mid_channels=mid_channels,
                           voxel_strides=voxel_strides, img_levels=img_levels,
                           out_channels=out_channels)
        if len({len(v) for v in stage_lists.values()}) != 1:
            raise ValueError('ScaleAlignedFusion: per-stage lists differ in length: ' +
                             ', '.join(f'{k}={len(v)}' for k, v in stage_lists.items()))
        if isinstance(img_channels, int):
            img_channels = [img_channels] * len(img_strides)
        if len(img_channels) != len(img_strides) or \
                any(not 0 <= level < len(img_strides) for level in img_levels):
            raise ValueError(f'ScaleAlignedFusion: img_levels {list(img_levels)} must index '
                             f'img_strides {list(img_strides)} and img_channels '
                             f'{list(img_channels)} (one per image level)')
        self.img_levels = list(img_levels)
        self.img_strides = list(img_strides)
        self.layers = nn.ModuleList(
            SSLFusionLayer(voxel_channels[i], mid_channels[i], img_channels[img_levels[i]],
                           voxel_size, point_cloud_range, voxel_strides[i],
                           out_channels=out_channels[i], **(layer_cfg or {}))
            for i in range(len(voxel_channels)))

    def stage_level(self, stage: int) -> Tuple[int, float]:
        """(image level index, its stride in input pixels) fused at ``stage``."""
        level = self.img_levels[stage]
        return level, self.img_strides[level]

    def forward(self, x, stage: int, img_feats: Sequence[Tensor], img_metas: List[dict]):
        """Fuse the output of backbone stage ``stage`` with its image level.

        Args:
            x (SparseConvTensor): the stage's voxels (see :meth:`SSLFusionLayer.forward`).
            stage (int): index of the stage, in [0, number of stages).
            img_feats (Sequence[Tensor]): image levels, each (B, C_img, H_l, W_l).
            img_metas (list[dict]): B ``Det3DDataSample.metainfo`` dicts.

        Returns:
            SparseConvTensor: same indices, features (M, C_out of the stage).

        Raises:
            IndexError: if ``stage`` or its image level does not exist.
        """
        if not 0 <= stage < len(self.layers):
            raise IndexError(f'stage {stage} not in [0, {len(self.layers)})')
        level, stride = self.stage_level(stage)
        if level >= len(img_feats):
            raise IndexError(f'stage {stage} fuses image level {level}, but only '
                             f'{len(img_feats)} levels were given')
        return self.layers[stage](x, img_feats[level], img_metas, stride)
