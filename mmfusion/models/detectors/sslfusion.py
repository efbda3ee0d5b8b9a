"""SSLFusion: a two-stage LiDAR+camera 3D detector (Voxel R-CNN with a scale- and space-aligned
latent-fusion sparse backbone).

Paper: B. Ding, J. Xie, J. Nie, J. Cao, "SSLFusion: Scale & Space Aligned Latent Fusion Model for
Multimodal 3D Object Detection", arXiv 2504.05170, Sec. 3 (overall architecture, Fig. 2). The
official code is an OpenPCDet ``VoxelRCNN_MM`` (github.com/TLDBN/SSLFsion); this is the same
pipeline assembled from mmdet/mmdet3d parts:

==================  =========================================================================
image branch        ``img_backbone`` (mmdet ResNet-50) + ``img_neck`` (mmdet FPN), levels
                    (B, C_img, H_l, W_l)
voxelisation        ``data_preprocessor`` (mmdet3d ``Det3DDataPreprocessor``, hard voxels)
VFE                 ``voxel_encoder`` (mmdet3d ``HardSimpleVFE``: mean of a voxel's points)
fused 3D backbone   ``middle_encoder`` (:class:`SSLFusionSparseUNet`: SAF = SAM + LFM at every
                    stage, height compression to the BEV map)
BEV backbone, neck  ``backbone`` (mmdet3d ``SECOND``) + ``neck`` (mmdet3d ``SECONDFPN``)
RPN                 ``rpn_head`` (mmdet3d ``PartA2RPNHead``: anchor head + proposal NMS)
RoI head            ``roi_head`` (``VoxelRCNNRoIHead``: voxel RoI pooling over the multi-scale
                    sparse features, 6x6x6 grid)
==================  =========================================================================

The train/test flow is mmdet3d's ``TwoStage3DDetector``; the only addition is that the fused
backbone needs the image features and the samples' metainfo (``lidar2img``, image resize/flip and
the 3D augmentation records that SAM undoes), which :meth:`extract_feat` takes from the input
dict (``loss``/``predict``/``_forward`` put the metainfo there).
"""
from typing import Dict, Optional, Sequence

from mmdet3d.models.detectors.two_stage import TwoStage3DDetector
from mmdet3d.registry import MODELS
from mmdet3d.structures.det3d_data_sample import SampleList
from torch import Tensor

__all__ = ['SSLFusion']


@MODELS.register_module()
class SSLFusion(TwoStage3DDetector):
    """SSLFusion detector.

    Args:
        img_backbone (dict): image backbone config (e.g. ``mmdet.ResNet``).
        img_neck (dict): image neck config (e.g. ``mmdet.FPN``); its outputs are the levels the
            middle encoder's SAF reads by index.
        voxel_encoder (dict): voxel feature encoder (e.g. ``HardSimpleVFE``).
        middle_encoder (dict): fused sparse backbone (:class:`SSLFusionSparseUNet`); called as
            ``middle_encoder(voxel_features, coors, batch_size, img_feats, img_metas)`` and
            returning ``spatial_features`` and ``multi_scale_3d_feats``/``_strides``.
        backbone (dict): BEV backbone. neck (dict): BEV neck.
        rpn_head (dict): RPN (``PartA2RPNHead``). roi_head (dict): RoI head.
        train_cfg, test_cfg (dict): with ``rpn``, ``rpn_proposal`` and ``rcnn`` entries, as
            mmdet3d's Part-A2/PV-RCNN configs.
        init_cfg (dict, optional), data_preprocessor (dict, optional): as mmdet3d detectors.

    Inputs (``batch_inputs_dict``): ``voxels`` (from the data preprocessor: ``voxels``
    (M, P, C_pts), ``num_points`` (M,), ``coors`` (M, 4) batch/z/y/x) and ``imgs``
    (B, 3, H, W) normalised, padded images.
    """

    def __init__(self,
                 img_backbone: dict,
                 img_neck: dict,
                 voxel_encoder: dict,
                 middle_encoder: dict,
                 backbone: dict,
                 neck: Optional[dict] = None,
                 rpn_head: Optional[dict] = None,
                 roi_head: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None):
        super().__init__(backbone=backbone, neck=neck, rpn_head=rpn_head, roi_head=roi_head,
                         train_cfg=train_cfg, test_cfg=test_cfg, init_cfg=init_cfg,
                         data_preprocessor=data_preprocessor)
        self.img_backbone = MODELS.build(img_backbone)
        self.img_neck = MODELS.build(img_neck)
        self.voxel_encoder = MODELS.build(voxel_encoder)
        self.middle_encoder = MODELS.build(middle_encoder)

    def extract_img_feat(self, imgs: Tensor) -> Sequence[Tensor]:
        """(B, 3, H, W) images -> image levels, each (B, C_img, H_l, W_l)."""
        return self.img_neck(self.img_backbone(imgs))

    def extract_feat(self, batch_inputs_dict: Dict) -> Dict:
        """Image levels, fused sparse backbone, BEV backbone and neck.

        Args:
            batch_inputs_dict (dict): ``voxels``, ``imgs`` and ``img_metas`` (B metainfo dicts,
                added by :meth:`loss` / :meth:`predict`).

        Returns:
            dict: the middle encoder's outputs plus ``neck_feats`` (list of (B, C, H/8, W/8))
            and ``voxels_dict``.

        Raises:
            KeyError: if the batch has no images or no metainfo.
        """
        for key in ('imgs', 'img_metas'):
            if batch_inputs_dict.get(key) is None:
                raise KeyError(f'SSLFusion needs {key!r} in the batch inputs: use a pipeline '
                               "that loads the image and packs it with 'img' "
                               '(Pack3DDetInputs keys)')
        img_metas = batch_inputs_dict['img_metas']
        img_feats = self.extract_img_feat(batch_inputs_dict['imgs'])
        voxel_dict = batch_inputs_dict['voxels']
        voxel_features = self.voxel_encoder(voxel_dict['voxels'], voxel_dict['num_points'],
                                            voxel_dict['coors'])
        feats_dict = self.middle_encoder(voxel_features, voxel_dict['coors'], len(img_metas),
                                         img_feats, img_metas)
        x = self.backbone(feats_dict['spatial_features'])
        feats_dict['neck_feats'] = self.neck(x) if self.with_neck else x
        feats_dict['voxels_dict'] = voxel_dict
        return feats_dict

    @staticmethod
    def _with_metas(batch_inputs_dict: dict, batch_data_samples: SampleList) -> dict:
        return dict(batch_inputs_dict,
                    img_metas=[sample.metainfo for sample in batch_data_samples])

    def loss(self, batch_inputs_dict: dict, batch_data_samples: SampleList, **kwargs) -> dict:
        """RPN and RoI-head losses (mmdet3d ``TwoStage3DDetector.loss``)."""
        return super().loss(self._with_metas(batch_inputs_dict, batch_data_samples),
                            batch_data_samples, **kwargs)

    def predict(self, batch_inputs_dict: dict, batch_data_samples: SampleList,
                **kwargs) -> SampleList:
        """Detections in ``pred_instances_3d`` (mmdet3d ``TwoStage3DDetector.predict``)."""
        return super().predict(self._with_metas(batch_inputs_dict, batch_data_samples),
                               batch_data_samples, **kwargs)

    def _forward(self, batch_inputs_dict: dict, batch_data_samples: SampleList,
                 **kwargs) -> tuple:
        """Raw RPN and RoI-head outputs (mmdet3d ``TwoStage3DDetector._forward``)."""
        return super()._forward(self._with_metas(batch_inputs_dict, batch_data_samples),
                                batch_data_samples, **kwargs)
