"""SSLFusion's fused sparse 3D U-Net: a SECOND/Voxel R-CNN 8x voxel encoder, a sparse decoder (the
"3D pyramid"), and SAF fusion after every encoder and decoder stage.

Paper: B. Ding, J. Xie, J. Nie, J. Cao, "SSLFusion: Scale & Space Aligned Latent Fusion Model for
Multimodal 3D Object Detection", arXiv 2504.05170, Sec. "Scale-Aligned Fusion Strategy" (fusion at
every stage of the 3D backbone with the image level of matching receptive field, on the way down
and again on the way up). The layer layout follows the official ``SSLFusionBackBone8x``
(github.com/TLDBN/SSLFsion, ``pcdet/models/backbones_3d/sslfusion_backbone.py``), read to settle
what the paper leaves open and written here with mmdet3d's ``make_sparse_convmodule``:

=========  ============================================  ==========  =========  ===========
stage      layers (conv + BN + ReLU each)                 channels    stride     image level
=========  ============================================  ==========  =========  ===========
input      SubM 3x3x3                                     C_in -> 16  1
conv1      SubM                                           16          1          0 (SAF)
conv2      SpConv s2, 2 x SubM                            32          2          1 (SAF)
conv3      SpConv s2, 2 x SubM                            64          4          2 (SAF)
conv4      SpConv s2 (z padding 0), 2 x SubM              64          8          3 (SAF)
deconv1    InverseConv (of conv4's SpConv), 2 x SubM      64          4          2 (SAF) + conv3
deconv2    InverseConv (of conv3's SpConv), 2 x SubM      32          2          1 (SAF) + conv2
deconv3    InverseConv (of conv2's SpConv), 2 x SubM      16          1          0 (SAF) + conv1
conv_out   SpConv (3, 1, 1) s(2, 1, 1), on conv4          128         8 (z 16)
=========  ============================================  ==========  =========  ===========

"+ convK" is the skip connection: the decoder stage's fused features plus the fused encoder
features of the same stride (the inverse convolution restores exactly that stage's voxels). The
outputs are the BEV map (height compression of ``conv_out``, OpenPCDet's ``HeightCompression``)
for the RPN, and the multi-scale voxel features Voxel R-CNN pools RoIs from: ``x_conv1`` ..
``x_conv3`` = the decoder outputs at strides 1, 2, 4 and ``x_conv4`` = the fused encoder output
at stride 8 (as in the official code).

Image side: as in the official backbone, each image level that is fused gets ONE lateral conv
(3x3 conv + BN + ReLU, C_img -> C_m of the stages reading it), run once per forward and read by
both the encoder and the decoder stage of that level (4 lateral convs with the default levels, not
one per fusion layer); ``shared_lateral_convs=False`` gives each fusion layer its own.

Sparse tensors are spconv 2.x ``SparseConvTensor`` with ``indices`` (M, 4) int32 (batch, z, y, x).
On CPU, spconv needs ``ConvAlgo.Native``; importing ``mmfusion.det3d`` installs the per-call switch
(``mmfusion/ops/spconv_algo.py``), so this module runs unchanged on CPU and CUDA.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmcv.cnn import ConvModule
from mmdet3d.models.layers import make_sparse_convmodule
from mmdet3d.models.layers.spconv import IS_SPCONV2_AVAILABLE
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmfusion.models.fusion.scale_aligned_fusion import ScaleAlignedFusion

if IS_SPCONV2_AVAILABLE:
    from spconv.pytorch import SparseConvTensor, SparseSequential
else:  # pragma: no cover - mmcv's own sparse ops
    from mmcv.ops import SparseConvTensor, SparseSequential

__all__ = ['SSLFusionSparseUNet']

_BN1D = dict(type='BN1d', eps=1e-3, momentum=0.01)
_BN2D = dict(type='BN2d', eps=1e-3, momentum=0.01)


def _add_features(x, skip):
    """x + skip for two sparse tensors on the same voxels (same indices, same order)."""
    if x.features.shape != skip.features.shape or not torch.equal(x.indices, skip.indices):
        raise RuntimeError('SSLFusionSparseUNet: decoder stage and skip connection are not on '
                           f'the same voxels ({tuple(x.features.shape)} vs '
                           f'{tuple(skip.features.shape)})')
    return x.replace_feature(x.features + skip.features)


@MODELS.register_module()
class SSLFusionSparseUNet(BaseModule):
    """Sparse U-Net voxel backbone with SAF fusion at every stage (SSLFusion's 3D branch).

    Args:
        in_channels (int): C_in of the voxel features (mean VFE: the point features, e.g. 4).
        sparse_shape (Sequence[int]): (D, H, W) voxel grid, z first, e.g. KITTI [41, 1600, 1408]
            (OpenPCDet adds 1 in z to the grid size).
        voxel_size (Sequence[float]): (dx, dy, dz) metres of the input voxel grid.
        point_cloud_range (Sequence[float]): (x_min, y_min, z_min, x_max, y_max, z_max) metres.
        base_channels (int): channels of the input conv. Default 16.
        encoder_channels (Sequence[int]): channels of conv1..conv4. Default (16, 32, 64, 64).
        encoder_blocks (Sequence[int]): number of conv modules of conv1..conv4 (the first of
            conv2..conv4 is the stride-2 conv). Default (1, 3, 3, 3).
        down_paddings (Sequence): padding of the stride-2 convs of conv2..conv4.
            Default (1, 1, (0, 1, 1)) (official: the last keeps z = 5 for KITTI).
        decoder_blocks (int): SubM modules after each inverse conv. Default 2.
        output_channels (int): channels of ``conv_out``. Default 128.
        out_padding (int | tuple): padding of ``conv_out``. Default 0.
        fusion (dict, optional): SAF settings shared by encoder and decoder: keyword arguments of
            :class:`ScaleAlignedFusion` other than the per-stage lists (``img_strides``,
            ``img_channels``, ``layer_cfg``). None: no fusion at all (a LiDAR-only Voxel R-CNN).
        mid_channels (Sequence[int]): C_m of the fusion at conv1..conv4 (the decoder stage of the
            same stride uses the same). Default (32, 64, 128, 128) (official).
        encoder_img_levels (Sequence[int | None]): image level fused after conv1..conv4; None
            leaves a stage unfused. Default (0, 1, 2, 3).
        decoder_img_levels (Sequence[int | None]): image level fused after deconv1..deconv3
            (strides 4, 2, 1); None leaves a stage unfused. Default (2, 1, 0).
        shared_lateral_convs (bool): one lateral conv per fused image level, held here and
            shared by the encoder and decoder stages of that level (official). False: one per
            fusion layer (inside each :class:`SSLFusionLayer`). Default True.
        norm_cfg (dict): norm of the sparse convs. Default BN1d(eps=1e-3, momentum=0.01).
        init_cfg (dict, optional): mmengine initialisation config.

    Raises:
        ValueError: on per-stage lists of the wrong length, or, with shared lateral convs, on
            two stages that read one image level at different ``mid_channels``.
    """

    def __init__(self,
                 in_channels: int,
                 sparse_shape: Sequence[int],
                 voxel_size: Sequence[float],
                 point_cloud_range: Sequence[float],
                 base_channels: int = 16,
                 encoder_channels: Sequence[int] = (16, 32, 64, 64),
                 encoder_blocks: Sequence[int] = (1, 3, 3, 3),
                 down_paddings: Sequence = (1, 1, (0, 1, 1)),
                 decoder_blocks: int = 2,
                 output_channels: int = 128,
                 out_padding=0,
                 fusion: Optional[dict] = dict(img_channels=256,
                                               img_strides=(8, 16, 32, 64, 128)),
                 mid_channels: Sequence[int] = (32, 64, 128, 128),
                 encoder_img_levels: Sequence[Optional[int]] = (0, 1, 2, 3),
                 decoder_img_levels: Sequence[Optional[int]] = (2, 1, 0),
                 shared_lateral_convs: bool = True,
                 norm_cfg: dict = _BN1D,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        num_stages = len(encoder_channels)
        for name, value, length in [('encoder_blocks', encoder_blocks, num_stages),
                                    ('down_paddings', down_paddings, num_stages - 1),
                                    ('mid_channels', mid_channels, num_stages),
                                    ('encoder_img_levels', encoder_img_levels, num_stages),
                                    ('decoder_img_levels', decoder_img_levels, num_stages - 1)]:
            if len(value) != length:
                raise ValueError(f'SSLFusionSparseUNet: {name} needs {length} entries (one per '
                                 f'stage), got {list(value)}')
        self.sparse_shape = list(sparse_shape)
        self.num_stages = num_stages
        self.strides = [2**i for i in range(num_stages)]

        def conv(c_in, c_out, key, conv_type='SubMConv3d', **kwargs):
            return make_sparse_convmodule(c_in, c_out, 3, indice_key=key, conv_type=conv_type,
                                          norm_cfg=norm_cfg, padding=kwargs.pop('padding', 1),
                                          **kwargs)

        self.conv_input = conv(in_channels, base_channels, 'subm1')
        self.encoder = nn.ModuleList()
        c_prev = base_channels
        for i, (c, n) in enumerate(zip(encoder_channels, encoder_blocks)):
            layers = []
            if i > 0:  # stride-2 conv first
                layers.append(conv(c_prev, c, f'spconv{i + 1}', 'SparseConv3d', stride=2,
                                   padding=down_paddings[i - 1]))
            while len(layers) < n:
                layers.append(conv(c if layers else c_prev, c, f'subm{i + 1}'))
            self.encoder.append(SparseSequential(*layers))
            c_prev = c
        # decoder stage j (0-based) goes from stride 2^(S-1-j) to 2^(S-2-j) and undoes the
        # stride-2 conv of encoder stage S-1-j (indice key 'spconv{S-j}')
        self.decoder = nn.ModuleList()
        for j in range(num_stages - 1):
            src, dst = num_stages - 1 - j, num_stages - 2 - j
            c_in, c_out = encoder_channels[src], encoder_channels[dst]
            layers = [conv(c_in, c_out, f'spconv{src + 1}', 'SparseInverseConv3d')]
            layers += [conv(c_out, c_out, f'de_subm{j + 1}') for _ in range(decoder_blocks)]
            self.decoder.append(SparseSequential(*layers))
        self.conv_out = make_sparse_convmodule(
            encoder_channels[-1], output_channels, (3, 1, 1), indice_key='spconv_down2',
            stride=(2, 1, 1), padding=out_padding, conv_type='SparseConv3d', norm_cfg=norm_cfg)

        # decoder stages run at the encoder strides below the deepest one, deepest first
        decoder_mids = list(mid_channels[-2::-1])
        self.lateral_convs = None
        if fusion is not None and shared_lateral_convs:
            fusion, self.lateral_convs = self._build_lateral_convs(
                fusion, list(encoder_img_levels) + list(decoder_img_levels),
                list(mid_channels) + decoder_mids)
        self.encoder_fusion, self.encoder_fusion_index = self._build_fusion(
            fusion, encoder_img_levels, list(encoder_channels), list(mid_channels), self.strides,
            voxel_size, point_cloud_range)
        self.decoder_fusion, self.decoder_fusion_index = self._build_fusion(
            fusion, decoder_img_levels, list(encoder_channels[-2::-1]), decoder_mids,
            self.strides[-2::-1], voxel_size, point_cloud_range)

    @staticmethod
    def _build_lateral_convs(fusion: dict, levels: List[Optional[int]], mids: List[int]
                             ) -> Tuple[dict, Optional[nn.ModuleDict]]:
        """One lateral conv per fused image level (C_img -> C_m of its stages), and the fusion
        settings for layers that read the lateral outputs (no conv of their own, C_img = C_m)."""
        width = {}
        for level, mid in zip(levels, mids):
            if level is None:
                continue
            if width.setdefault(level, mid) != mid:
                raise ValueError(
                    f'SSLFusionSparseUNet: image level {level} is fused at mid_channels '
                    f'{width[level]} and {mid}; one shared lateral conv cannot serve both '
                    '(set shared_lateral_convs=False)')
        if not width:
            return fusion, None
        num_levels = len(fusion.get('img_strides', (8, 16, 32, 64, 128)))
        img_channels = fusion.get('img_channels', 256)
        if isinstance(img_channels, int):
            img_channels = [img_channels] * num_levels
        if any(not 0 <= level < len(img_channels) for level in width):
            raise ValueError(f'SSLFusionSparseUNet: fused image levels {sorted(width)} must '
                             f'index the {len(img_channels)} image levels')
        layer_cfg = dict(fusion.get('layer_cfg') or {})
        norm_cfg = layer_cfg.get('lateral_norm_cfg', _BN2D)
        convs = nn.ModuleDict({
            str(level): ConvModule(img_channels[level], mid, 3, padding=1, norm_cfg=norm_cfg,
                                   act_cfg=dict(type='ReLU'))
            for level, mid in sorted(width.items())})
        layer_cfg['lateral_conv'] = False
        fusion = dict(fusion, layer_cfg=layer_cfg,
                      img_channels=[width.get(i, c) for i, c in enumerate(img_channels)])
        return fusion, convs

    @staticmethod
    def _build_fusion(fusion: Optional[dict], levels, channels: List[int], mids: List[int],
                      strides: List[int], voxel_size, point_cloud_range
                      ) -> Tuple[Optional[ScaleAlignedFusion], Dict[int, int]]:
        """SAF over the stages whose level is not None, and stage -> SAF layer index."""
        fused = [i for i, level in enumerate(levels) if level is not None]
        if fusion is None or not fused:
            return None, {}
        saf = ScaleAlignedFusion(
            voxel_channels=[channels[i] for i in fused], mid_channels=[mids[i] for i in fused],
            voxel_strides=[strides[i] for i in fused], img_levels=[levels[i] for i in fused],
            voxel_size=voxel_size, point_cloud_range=point_cloud_range, **fusion)
        return saf, {stage: k for k, stage in enumerate(fused)}

    @staticmethod
    def _fuse(saf, index: Dict[int, int], stage: int, x, img_feats, img_metas):
        if saf is None or stage not in index:
            return x
        return saf(x, index[stage], img_feats, img_metas)

    def forward(self, voxel_features: Tensor, coors: Tensor, batch_size: int,
                img_feats: Optional[Sequence[Tensor]] = None,
                img_metas: Optional[List[dict]] = None) -> Dict:
        """Encode the voxels, fusing each stage with its image level.

        Args:
            voxel_features (Tensor): (M, C_in) features of the non-empty voxels.
            coors (Tensor): (M, 4) int voxel indices (batch, z, y, x).
            batch_size (int): B.
            img_feats (Sequence[Tensor], optional): image levels, each (B, C_img, H_l, W_l).
                Required when the module fuses.
            img_metas (list[dict], optional): B ``Det3DDataSample.metainfo`` dicts (lidar2img,
                image shape/scale/flip and the 3D augmentation records SAM undoes).

        Returns:
            dict:
                - spatial_features (Tensor): (B, C_out * D_out, H / 8, W / 8) BEV map.
                - multi_scale_3d_feats (dict[str, SparseConvTensor]): ``x_conv1`` .. ``x_conv4``.
                - multi_scale_3d_strides (dict[str, int]): their strides (1, 2, 4, 8).

        Raises:
            ValueError: if the module fuses and ``img_feats`` or ``img_metas`` is missing.
        """
        fuses = self.encoder_fusion is not None or self.decoder_fusion is not None
        if fuses and (img_feats is None or img_metas is None):
            raise ValueError('SSLFusionSparseUNet fuses image features: pass img_feats and '
                             'img_metas')
        if self.lateral_convs is not None:  # once per level, read by encoder and decoder
            img_feats = list(img_feats)
            for level, conv in self.lateral_convs.items():
                img_feats[int(level)] = conv(img_feats[int(level)])
        x = SparseConvTensor(voxel_features, coors.int(), self.sparse_shape, batch_size)
        x = self.conv_input(x)
        encoded = []
        for i, stage in enumerate(self.encoder):
            x = stage(x)
            x = self._fuse(self.encoder_fusion, self.encoder_fusion_index, i, x, img_feats,
                           img_metas)
            encoded.append(x)

        out = self.conv_out(encoded[-1]).dense()
        n, c, d, h, w = out.shape
        spatial_features = out.view(n, c * d, h, w)

        multi_scale = {f'x_conv{self.num_stages}': encoded[-1]}
        x = encoded[-1]
        for j, stage in enumerate(self.decoder):
            dst = self.num_stages - 2 - j
            x = stage(x)
            x = self._fuse(self.decoder_fusion, self.decoder_fusion_index, j, x, img_feats,
                           img_metas)
            x = _add_features(x, encoded[dst])
            multi_scale[f'x_conv{dst + 1}'] = x
        multi_scale = dict(sorted(multi_scale.items()))
        return dict(spatial_features=spatial_features,
                    multi_scale_3d_feats=multi_scale,
                    multi_scale_3d_strides={f'x_conv{i + 1}': s
                                            for i, s in enumerate(self.strides)})
