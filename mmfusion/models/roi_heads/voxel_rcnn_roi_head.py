"""Voxel R-CNN's RoI head (second stage) for mmdet3d, as SSLFusion uses it.

Paper: J. Deng et al., "Voxel R-CNN: Towards High Performance Voxel-based 3D Object Detection",
AAAI 2021, Sec. 3.2 (voxel RoI pooling of 6 x 6 x 6 grid points from the sparse backbone's
stages; shared FC layers and two branches, an IoU-guided confidence and box residuals) and its
training objectives (confidence target ``(IoU - 0.25) / (0.75 - 0.25)`` clipped to [0, 1], box
regression for RoIs with IoU > 0.55 in the RoI's canonical frame, smooth-L1 and corner losses).
SSLFusion (arXiv 2504.05170) uses this head unchanged; the settings (128 RoIs per sample, half
foreground, 80 % of the negatives hard, i.e. IoU in [0.1, 0.55)) are those of its official config
(github.com/TLDBN/SSLFsion, ``tools/cfgs/kitti/voxel_rcnn_3class_SSLFusion.yaml``, ROI_HEAD),
read and not copied.

Stock mmdet3d pieces reused: ``Base3DRoIHead`` (builds the extractor, head, assigner and
sampler), ``PVRCNNRoiHead._assign_and_sample`` (called as a function of this head's assigner and
sampler: per-class
``Max3DIoUAssigner`` + ``IoUNegPiecewiseSampler``: the official sampler's fg 0.55 / hard-bg 0.1
split with 80 % hard negatives), ``PVRCNNBBoxHead`` (a 6 x 6 x 6 grid-feature FC head: same
layer layout as the official head, canonical-frame targets, IoU-based confidence targets,
smooth-L1 + corner loss, decoding and class-agnostic NMS), ``bbox3d2roi``'s RoI layout. The RoI
extractor is mmfusion's :class:`~mmfusion.models.roi_heads.voxel_roi_pooling.VoxelRoIGridPooling`.

Config layout: ``train_cfg`` / ``test_cfg`` are the ``rcnn`` parts of mmdet3d's PV-RCNN config
(``configs/pv_rcnn/pv_rcnn_8xb2-80e_kitti-3d-3class.py``), same keys: train ``assigner``,
``sampler``, ``cls_pos_thr``, ``cls_neg_thr``; test ``use_rotate_nms``, ``nms_thr``,
``score_thr`` and, optional here, ``max_num`` (boxes kept per sample after NMS, highest
scores first; the official post-processing keeps at most 500).

Differences from the stock PV-RCNN RoI head: no semantic head (PV-RCNN's ``__init__`` requires
one, which is why this head derives from ``Base3DRoIHead`` and borrows only PV-RCNN's assignment
and sampling); features come from
``feats_dict['multi_scale_3d_feats']`` / ``['multi_scale_3d_strides']``; the ground truth of
``batch_data_samples`` is not modified (the stock ``_assign_and_sample`` replaces
``gt_instances_3d.bboxes_3d`` by its tensor, so it is given copies); samples without proposals
give empty results instead of an error. Note that ``PVRCNNBBoxHead`` computes the confidence
target between ``cls_neg_thr`` and ``cls_pos_thr`` as ``2 * IoU - 0.5`` whatever the thresholds,
so it is the official ramp only for the official 0.25 / 0.75.
"""
from typing import List, Optional

import torch
from mmdet3d.models.roi_heads.base_3droi_head import Base3DRoIHead
from mmdet3d.models.roi_heads.pv_rcnn_roi_head import PVRCNNRoiHead
from mmdet3d.registry import MODELS
from mmdet3d.structures.det3d_data_sample import SampleList
from mmdet3d.utils import InstanceList
from mmengine.structures import InstanceData
from torch import Tensor

__all__ = ['VoxelRCNNRoIHead']


def _rois(boxes_list: List[Tensor]) -> Tensor:
    """(N, 1 + 7) ``[batch, box]`` rows, as mmdet3d's ``bbox3d2roi`` (which fails when a sample
    has no box: it keeps such a sample's (0, 7) tensor without the batch column)."""
    return torch.cat([
        torch.cat([boxes.new_full((boxes.shape[0], 1), i), boxes[:, :7]], dim=1)
        for i, boxes in enumerate(boxes_list)
    ])


@MODELS.register_module()
class VoxelRCNNRoIHead(Base3DRoIHead):
    """Voxel R-CNN RoI head: voxel RoI pooling + grid-feature box refinement.

    Args:
        num_classes (int): number of classes of the RPN labels (the head is class agnostic).
        bbox_roi_extractor (dict): config of ``VoxelRoIGridPooling``.
        bbox_head (dict): config of the box head, normally ``VoxelRCNNBBoxHead``
            (``PVRCNNBBoxHead`` with OpenPCDet's initialisation) with ``in_channels`` = the
            extractor's ``out_channels`` and ``grid_size`` = its G.
        train_cfg (dict, optional): PV-RCNN's ``train_cfg.rcnn`` layout (see the module
            docstring). test_cfg (dict, optional): ``test_cfg.rcnn``. init_cfg: mmengine init.

    Raises:
        ValueError: if ``bbox_roi_extractor`` or ``bbox_head`` is missing, or the head's grid
            size / input channels disagree with the extractor's.
    """

    def __init__(self,
                 num_classes: int = 3,
                 bbox_roi_extractor: Optional[dict] = None,
                 bbox_head: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if bbox_roi_extractor is None or bbox_head is None:
            raise ValueError('VoxelRCNNRoIHead needs bbox_roi_extractor and bbox_head configs')
        super().__init__(
            bbox_head=bbox_head,
            bbox_roi_extractor=bbox_roi_extractor,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            init_cfg=init_cfg)
        self.num_classes = num_classes
        extractor, head = self.bbox_roi_extractor, self.bbox_head
        if hasattr(head, 'grid_size') and hasattr(extractor, 'grid_size'):
            if head.grid_size != extractor.grid_size:
                raise ValueError(f'VoxelRCNNRoIHead: bbox_head.grid_size {head.grid_size} != '
                                 f'bbox_roi_extractor.grid_size {extractor.grid_size}')
            expected = extractor.out_channels * extractor.grid_size**3
            if getattr(head, 'in_channels', expected) != expected:
                raise ValueError(
                    f'VoxelRCNNRoIHead: bbox_head.in_channels must be the extractor\'s '
                    f'out_channels {extractor.out_channels}, got '
                    f'{head.in_channels // extractor.grid_size**3}')

    def _bbox_forward(self, feats_dict: dict, rois: Tensor) -> dict:
        """Pool the RoIs and run the box head.

        Args:
            feats_dict (dict): ``multi_scale_3d_feats`` and ``multi_scale_3d_strides``.
            rois (Tensor): (N, 8) ``[batch, x, y, z_bottom, dx, dy, dz, yaw]``.

        Returns:
            dict: ``bbox_scores`` (N, 1) logits and ``bbox_reg`` (N, 7) residuals.
        """
        for key in ('multi_scale_3d_feats', 'multi_scale_3d_strides'):
            if key not in feats_dict:
                raise KeyError(f'VoxelRCNNRoIHead: feats_dict has no {key!r} (keys: '
                               f'{sorted(feats_dict)})')
        pooled = self.bbox_roi_extractor(feats_dict['multi_scale_3d_feats'],
                                         feats_dict['multi_scale_3d_strides'], rois)
        bbox_score, bbox_reg = self.bbox_head(pooled)
        return dict(bbox_scores=bbox_score, bbox_reg=bbox_reg)

    def loss(self, feats_dict: dict, rpn_results_list: InstanceList,
             batch_data_samples: SampleList, **kwargs) -> dict:
        """Assign and sample the proposals, pool, and compute the losses.

        Args:
            feats_dict (dict): ``multi_scale_3d_feats`` (name -> spconv SparseConvTensor) and
                ``multi_scale_3d_strides`` (name -> int).
            rpn_results_list (list[InstanceData]): per sample ``bboxes_3d``
                (LiDARInstance3DBoxes), ``labels_3d``, ``scores_3d``.
            batch_data_samples (list[Det3DDataSample]): with ``gt_instances_3d`` (not modified).

        Returns:
            dict: ``loss_cls``, ``loss_bbox`` and (with corner loss) ``loss_corner``. A batch
            without any RoI (every RPN score at or below ``rpn_proposal.score_thr``) gives
            zeros that are connected to every head parameter, as mmdet3d's
            ``PartA2BboxHead.loss`` fakes the box losses of a batch without positives.
        """
        batch_gt_instances_3d = [sample.gt_instances_3d for sample in batch_data_samples]
        sampling_results = self._assign_and_sample(rpn_results_list, batch_gt_instances_3d)
        rois = _rois([res.bboxes for res in sampling_results])
        if rois.shape[0] == 0:
            zero = sum(param.sum() for param in self.parameters()) * 0
            names = ['loss_cls', 'loss_bbox']
            if self.bbox_head.with_corner_loss:
                names.append('loss_corner')
            return {name: zero for name in names}
        bbox_results = self._bbox_forward(feats_dict, rois)
        bbox_targets = self.bbox_head.get_targets(sampling_results, self.train_cfg)
        return self.bbox_head.loss(bbox_results['bbox_scores'], bbox_results['bbox_reg'], rois,
                                   *bbox_targets)

    def predict(self, feats_dict: dict, rpn_results_list: InstanceList,
                batch_data_samples: SampleList, **kwargs) -> InstanceList:
        """Refine the proposals into detections.

        Args:
            feats_dict (dict): see :meth:`loss`.
            rpn_results_list (list[InstanceData]): see :meth:`loss`.
            batch_data_samples (list[Det3DDataSample]): metainfo with ``box_type_3d``.

        Returns:
            list[InstanceData]: per sample ``bboxes_3d`` (``box_type_3d``, bottom-centre
            origin), ``scores_3d`` (sigmoid of the confidence) and ``labels_3d`` (the RPN
            label of the refined proposal), at most ``test_cfg.max_num`` when set.
        """
        assert self.with_bbox, 'Bbox head must be implemented.'
        batch_input_metas = [sample.metainfo for sample in batch_data_samples]
        rois = _rois([res['bboxes_3d'].tensor for res in rpn_results_list])
        labels_3d = [res['labels_3d'] for res in rpn_results_list]
        if rois.shape[0] == 0:
            return [self._empty_result(meta, rois) for meta in batch_input_metas]
        bbox_results = self._bbox_forward(feats_dict, rois)
        results = self.bbox_head.get_results(rois, bbox_results['bbox_scores'],
                                             bbox_results['bbox_reg'], labels_3d,
                                             batch_input_metas, self.test_cfg)
        # get_results stops at the last sample that has a RoI
        results += [self._empty_result(meta, rois) for meta in batch_input_metas[len(results):]]
        max_num = self.test_cfg.get('max_num') if self.test_cfg is not None else None
        if max_num is not None:
            results = [res[res.scores_3d.argsort(descending=True)[:max_num]]
                       for res in results]
        return results

    def _empty_result(self, input_meta: dict, like: Tensor) -> InstanceData:
        results = InstanceData()
        code_size = self.bbox_head.bbox_coder.code_size
        results.bboxes_3d = input_meta['box_type_3d'](like.new_zeros(0, code_size), code_size)
        results.scores_3d = like.new_zeros(0)
        results.labels_3d = like.new_zeros(0, dtype=torch.long)
        return results

    def _assign_and_sample(self, proposal_list: InstanceList,
                           batch_gt_instances_3d: InstanceList) -> List:
        """PV-RCNN's assignment and sampling (see ``PVRCNNRoiHead``), on copies of the GT.

        Args:
            proposal_list (list[InstanceData]): RPN results (``bboxes_3d``, ``labels_3d``).
            batch_gt_instances_3d (list[InstanceData]): ``bboxes_3d``, ``labels_3d``.

        Returns:
            list[SamplingResult]: per sample, positives first, ``iou`` of every sampled RoI.
        """
        copies = [InstanceData(bboxes_3d=gt.bboxes_3d, labels_3d=gt.labels_3d)
                  for gt in batch_gt_instances_3d]
        return PVRCNNRoiHead._assign_and_sample(self, proposal_list, copies)
