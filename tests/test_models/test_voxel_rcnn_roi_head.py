"""Voxel R-CNN RoI head and voxel RoI pooling on real KITTI frames 000001 / 000002: sparse
voxels from the point clouds at strides 1/2/4/8 (random features), GT from the converted infos."""
import copy
import math
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from mmdet3d.registry import MODELS
from mmdet3d.structures import (Box3DMode, CameraInstance3DBoxes, Det3DDataSample,
                                LiDARInstance3DBoxes)
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

import mmfusion.det3d  # noqa: F401  (registers the head and the CPU fallbacks)
from mmfusion.ops.voxel_centers import voxel_centers
from mmfusion.ops.voxel_query import voxel_query

pytestmark = pytest.mark.default_scope('mmdet3d')

KITTI = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'kitti', 'training')
VOXEL_SIZE = [0.05, 0.05, 0.1]
PC_RANGE = [0, -40, -3, 70.4, 40, 1]
CLASSES = ('Pedestrian', 'Cyclist', 'Car')
SCALES = {'x_conv1': (1, 16), 'x_conv2': (2, 32), 'x_conv3': (4, 64), 'x_conv4': (8, 64)}
FRAMES = ('000001', '000002')

EXTRACTOR = dict(
    type='VoxelRoIGridPooling',
    feature_sources=tuple(SCALES),
    in_channels=tuple(c for _, c in SCALES.values()),
    voxel_size=VOXEL_SIZE,
    point_cloud_range=PC_RANGE,
    grid_size=6,
    mlp_channels=((32, 32), ) * 4,
    query_ranges=((4, 4, 4), ) * 4,
    radii=(0.2, 0.4, 0.8, 1.6),
    nsamples=(16, ) * 4,
    pre_mlp=True,
    pool_mode='max')


def rcnn_assigner():
    return dict(type='Max3DIoUAssigner', iou_calculator=dict(type='BboxOverlaps3D',
                                                             coordinate='lidar'),
                pos_iou_thr=0.55, neg_iou_thr=0.55, min_pos_iou=0.55, ignore_iof_thr=-1)


HEAD = dict(
    type='VoxelRCNNRoIHead',
    num_classes=3,
    bbox_roi_extractor=EXTRACTOR,
    bbox_head=dict(
        type='PVRCNNBBoxHead',
        in_channels=128,
        grid_size=6,
        num_classes=3,
        class_agnostic=True,
        shared_fc_channels=(256, 256),
        reg_channels=(256, 256),
        cls_channels=(256, 256),
        dropout_ratio=0.3,
        with_corner_loss=True,
        bbox_coder=dict(type='DeltaXYZWLHRBBoxCoder'),
        loss_bbox=dict(type='mmdet.SmoothL1Loss', beta=1.0 / 9.0, reduction='sum',
                       loss_weight=1.0),
        loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True, reduction='sum',
                      loss_weight=1.0)),
    train_cfg=dict(
        assigner=[rcnn_assigner() for _ in CLASSES],
        sampler=dict(type='IoUNegPiecewiseSampler', num=128, pos_fraction=0.5,
                     neg_piece_fractions=[0.8, 0.2], neg_iou_piece_thrs=[0.55, 0.1],
                     neg_pos_ub=-1, add_gt_as_proposals=False, return_iou=True),
        cls_pos_thr=0.75,
        cls_neg_thr=0.25),
    test_cfg=dict(use_rotate_nms=True, use_raw_score=True, nms_thr=0.1, score_thr=0.1,
                  max_num=100))


def build_head(rois_per_sample=32, **test_cfg):
    """The head with the official layers; fewer sampled RoIs than the official 128 (CPU time)."""
    cfg = ConfigDict(copy.deepcopy(HEAD))
    cfg.train_cfg.sampler.num = rois_per_sample
    cfg.test_cfg.update(test_cfg)
    head = MODELS.build(cfg)
    head.init_weights()
    return head


def frame_voxels(frame, batch):
    """(M, 4) int32 (batch, z, y, x) occupied input voxels of a real frame (flooring)."""
    pts = np.fromfile(osp.join(KITTI, 'velodyne', f'{frame}.bin'), dtype=np.float32)
    pts = pts.reshape(-1, 4)[:, :3]
    low, high = np.array(PC_RANGE[:3]), np.array(PC_RANGE[3:])
    pts = pts[((pts >= low) & (pts < high)).all(1)]
    zyx = np.unique(np.floor((pts - low) / VOXEL_SIZE).astype(np.int64)[:, ::-1], axis=0)
    return torch.from_numpy(np.concatenate([np.full((len(zyx), 1), batch), zyx], 1))


@pytest.fixture(scope='module')
def feats_dict():
    """Sparse tensors of frames 000001 (sample 0) and 000002 (sample 1) at 4 strides."""
    from spconv.pytorch import SparseConvTensor
    gen = torch.Generator().manual_seed(0)
    base = torch.cat([frame_voxels(f, b) for b, f in enumerate(FRAMES)])
    shape = np.array([41, 1600, 1408])
    feats, strides = {}, {}
    for name, (stride, channels) in SCALES.items():
        ind = torch.unique(torch.cat([base[:, :1], base[:, 1:] // stride], 1), dim=0)
        feats[name] = SparseConvTensor(
            torch.randn(len(ind), channels, generator=gen), ind.int(),
            (-(-shape // stride)).tolist(), batch_size=len(FRAMES))
        strides[name] = stride
    return dict(multi_scale_3d_feats=feats, multi_scale_3d_strides=strides)


@pytest.fixture(scope='module')
def data_samples(kitti_infos_root):
    """Det3DDataSamples with the LiDAR GT of both frames (3 classes) from the infos."""
    with open(osp.join(kitti_infos_root, 'kitti_infos_train.pkl'), 'rb') as f:
        infos = {i['sample_idx']: i for i in pickle.load(f)['data_list']}
    samples = []
    for frame in FRAMES:
        info = infos[int(frame)]
        keep = [a for a in info['instances'] if 0 <= a['bbox_label_3d'] <= 2]
        lidar2cam = np.array(info['images']['CAM2']['lidar2cam'])
        boxes = CameraInstance3DBoxes(np.array([a['bbox_3d'] for a in keep])).convert_to(
            Box3DMode.LIDAR, np.linalg.inv(lidar2cam))
        sample = Det3DDataSample(metainfo=dict(box_type_3d=LiDARInstance3DBoxes))
        sample.gt_instances_3d = InstanceData(
            bboxes_3d=boxes, labels_3d=torch.tensor([a['bbox_label_3d'] for a in keep]))
        samples.append(sample)
    return samples


def proposals(data_samples, seed=0, jitters=10, randoms=20):
    """GT boxes jittered (centre +-0.4 m, size +-15 %, yaw +-0.3) plus random boxes."""
    gen = torch.Generator().manual_seed(seed)
    results = []
    for sample in data_samples:
        gt = sample.gt_instances_3d
        boxes = gt.bboxes_3d.tensor.repeat_interleave(jitters, 0)
        noise = torch.rand(len(boxes), 7, generator=gen) * 2 - 1
        boxes[:, :3] += noise[:, :3] * 0.4
        boxes[:, 3:6] *= 1 + noise[:, 3:6] * 0.15
        boxes[:, 6] += noise[:, 6] * 0.3
        rand = torch.rand(randoms, 7, generator=gen)
        rand = rand * torch.tensor([70., 80., 2., 4., 2., 1., 6.28]) + torch.tensor(
            [0., -40., -2.5, 0.5, 0.5, 1., -3.14])
        labels = torch.cat([gt.labels_3d.repeat_interleave(jitters),
                            torch.randint(3, (randoms, ), generator=gen)])
        all_boxes = torch.cat([boxes, rand])
        results.append(InstanceData(bboxes_3d=LiDARInstance3DBoxes(all_boxes),
                                    labels_3d=labels,
                                    scores_3d=torch.rand(len(labels), generator=gen),
                                    cls_preds=torch.rand(len(labels), 3, generator=gen)))
    return results


def test_rotated_grid_point_hand_computed():
    extractor = MODELS.build(EXTRACTOR)
    x, y, z, dx, dy, dz, yaw = 10., 5., -1., 4., 2., 1.5, math.pi / 6
    grid = extractor.roi_grid_points(torch.tensor([[x, y, z, dx, dy, dz, yaw]]))
    assert grid.shape == (1, 216, 3)
    # grid cell (i, j, k) = (5, 0, 0): flat index 5 * 36
    lx, ly, lz = (5.5 / 6 - 0.5) * dx, (0.5 / 6 - 0.5) * dy, (0.5 / 6 - 0.5) * dz
    expected = [x + lx * math.cos(yaw) - ly * math.sin(yaw),
                y + lx * math.sin(yaw) + ly * math.cos(yaw),
                z + dz / 2 + lz]  # bottom-centre origin -> gravity centre
    assert torch.allclose(grid[0, 180], torch.tensor(expected), atol=1e-5)
    # all grid points inside the box, at the sub-voxel centres: back in the box frame they
    # take the values +-(1/12, 3/12, 5/12) of each extent
    rel = grid[0] - torch.tensor([x, y, z + dz / 2])
    local = torch.stack([rel[:, 0] * math.cos(yaw) + rel[:, 1] * math.sin(yaw),
                         -rel[:, 0] * math.sin(yaw) + rel[:, 1] * math.cos(yaw), rel[:, 2]], 1)
    steps = local / torch.tensor([dx, dy, dz]) * 12
    assert torch.allclose(steps, steps.round(), atol=1e-4)
    assert set(steps.round().flatten().tolist()) == {-5., -3., -1., 1., 3., 5.}


def test_grid_point_on_occupied_voxel_finds_it(feats_dict):
    extractor = MODELS.build(EXTRACTOR)
    sparse = feats_dict['multi_scale_3d_feats']['x_conv1']
    centres = voxel_centers(sparse.indices, VOXEL_SIZE, PC_RANGE, 1)
    target = int((sparse.indices[:, 0] == 1).nonzero()[500])  # a voxel of sample 1
    # an RoI of 0.6 m whose grid point (0, 0, 0) at local (-0.25, -0.25, -0.25) is on it
    c = centres[target]
    roi = torch.tensor([[1., c[0] + 0.25, c[1] + 0.25, c[2] + 0.25 - 0.3, 0.6, 0.6, 0.6, 0.]])
    grid = extractor.roi_grid_points(roi[:, 1:]).view(-1, 3)
    assert torch.allclose(grid[0], c, atol=1e-5)
    batch = torch.ones(216, dtype=torch.long)
    idx, empty = voxel_query(grid, batch, centres, sparse.indices, VOXEL_SIZE, PC_RANGE,
                             (4, 4, 4), 0.2, 16, 1)
    assert not empty[0] and target in idx[0].tolist()
    _, empty_pool = extractor.pool_scale(0, sparse, 1, grid, batch)
    assert torch.equal(empty_pool, empty)
    # the same RoI in sample 0 does not see sample 1's voxel
    idx0, empty0 = voxel_query(grid, batch * 0, centres, sparse.indices, VOXEL_SIZE, PC_RANGE,
                               (4, 4, 4), 0.2, 16, 1)
    assert empty0[0] or target not in idx0[0].tolist()


def test_pooled_features_car_nonzero_empty_space_zero(feats_dict, data_samples):
    extractor = MODELS.build(EXTRACTOR)
    extractor.init_weights()
    extractor.eval()
    gt = data_samples[0].gt_instances_3d
    car = gt.bboxes_3d.tensor[gt.labels_3d == 2]
    assert len(car) == 1
    nowhere = torch.tensor([[35., -30., -1.5, 4., 2., 1.6, 0.3]])  # no LiDAR return there
    rois = torch.cat([torch.zeros(2, 1), torch.cat([car, nowhere])], 1)
    grid = extractor.roi_grid_points(rois[:, 1:]).view(2, 216, 3)
    with torch.no_grad():
        pooled = extractor(feats_dict['multi_scale_3d_feats'],
                           feats_dict['multi_scale_3d_strides'], rois)
        assert pooled.shape == (2, 6, 6, 6, 128)
        for level, name in enumerate(SCALES):
            _, empty = extractor.pool_scale(level, feats_dict['multi_scale_3d_feats'][name],
                                            SCALES[name][0], grid.view(-1, 3),
                                            torch.zeros(432, dtype=torch.long))
            empty = empty.view(2, 216)
            assert (~empty[0]).any(), name  # the car has voxels at every scale
            assert empty[1].all(), name
            out = pooled.view(2, 216, 128)[:, :, level * 32:(level + 1) * 32]
            assert (out[0][~empty[0]].abs().sum(-1) > 0).all()
    # fresh BatchNorm in eval mode: an empty query gives exactly zero
    assert (pooled[1] == 0).all()
    assert pooled[0].abs().sum() > 0


def test_loss_finite_and_reaches_every_parameter(feats_dict, data_samples):
    head = build_head()
    head.train()
    gt_before = [s.gt_instances_3d.bboxes_3d.tensor.clone() for s in data_samples]
    losses = head.loss(feats_dict, proposals(data_samples), data_samples)
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_corner'}
    for name, value in losses.items():
        assert torch.isfinite(value).all() and value > 0, name
    sum(losses.values()).backward()
    for name, param in head.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name
    for sample, before in zip(data_samples, gt_before):  # the GT is left as it was
        assert isinstance(sample.gt_instances_3d.bboxes_3d, LiDARInstance3DBoxes)
        assert torch.equal(sample.gt_instances_3d.bboxes_3d.tensor, before)


def _no_proposals():
    return InstanceData(bboxes_3d=LiDARInstance3DBoxes(torch.zeros(0, 7)),
                        labels_3d=torch.zeros(0, dtype=torch.long), scores_3d=torch.zeros(0),
                        cls_preds=torch.zeros(0, 3))


def test_loss_without_any_proposal_is_zero(feats_dict, data_samples):
    """A batch whose RPN kept no proposal (all scores underflowed to 0 after a BatchNorm
    switch in the overfit run) trains on: zero losses that reach every head parameter."""
    head = build_head()
    head.train()
    losses = head.loss(feats_dict, [_no_proposals() for _ in data_samples], data_samples)
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_corner'}
    assert all(value == 0 for value in losses.values())
    sum(losses.values()).backward()
    for name, param in head.named_parameters():
        assert param.grad is not None and (param.grad == 0).all(), name
    # the extractor alone: no RoI in, (0, G, G, G, C) out
    pooled = head.bbox_roi_extractor(feats_dict['multi_scale_3d_feats'],
                                     feats_dict['multi_scale_3d_strides'], torch.zeros(0, 8))
    assert pooled.shape == (0, 6, 6, 6, 128)


def test_predict_within_max_num(feats_dict, data_samples):
    head = build_head(score_thr=0.0, max_num=None)
    head.eval()
    rpn = proposals(data_samples, seed=1)
    with torch.no_grad():
        full = head.predict(feats_dict, rpn, data_samples)
        head.test_cfg.max_num = 7
        results = head.predict(feats_dict, rpn, data_samples)
    assert len(results) == 2
    for res, ref, prop in zip(results, full, rpn):
        assert isinstance(res.bboxes_3d, LiDARInstance3DBoxes)
        assert len(ref) > 7 and len(res) == 7  # the cap matters here
        assert torch.isfinite(res.bboxes_3d.tensor).all() and torch.isfinite(res.scores_3d).all()
        assert torch.equal(res.scores_3d, ref.scores_3d.sort(descending=True).values[:7])
        assert ((res.scores_3d >= 0) & (res.scores_3d <= 1)).all()
        assert set(res.labels_3d.tolist()) <= set(prop.labels_3d.tolist())


def test_zero_regression_on_gt_proposals_returns_gt(feats_dict, data_samples):
    head = build_head(score_thr=0.0, max_num=None)
    head.eval()
    final_reg = head.bbox_head.reg_layer[-1]
    torch.nn.init.zeros_(final_reg.weight)
    torch.nn.init.zeros_(final_reg.bias)
    rpn = []
    for sample in data_samples:
        gt = sample.gt_instances_3d
        rpn.append(InstanceData(bboxes_3d=gt.bboxes_3d.clone(), labels_3d=gt.labels_3d.clone(),
                                scores_3d=torch.ones(len(gt)), cls_preds=torch.ones(len(gt), 3)))
    # and a sample without proposals gives an empty result
    with torch.no_grad():
        results = head.predict(feats_dict, rpn + [_no_proposals()],
                               data_samples + data_samples[:1])
    assert len(results) == 3 and len(results[2]) == 0
    for res, sample in zip(results[:2], data_samples):
        gt = sample.gt_instances_3d
        assert len(res) == len(gt)  # GT boxes do not overlap: NMS keeps all
        order = res.scores_3d.new_tensor([
            int((gt.bboxes_3d.tensor - b).abs().sum(1).argmin()) for b in res.bboxes_3d.tensor
        ]).long()
        assert torch.allclose(res.bboxes_3d.tensor, gt.bboxes_3d.tensor[order], atol=1e-4)
        assert torch.equal(res.labels_3d, gt.labels_3d[order])


def test_plain_pointnet_variant_and_errors(feats_dict, data_samples):
    """pre_mlp=False (the paper's plain PointNet on [v - g; phi]) with mean pooling trains too;
    a missing scale is named in the error."""
    extractor = MODELS.build(dict(EXTRACTOR, pre_mlp=False, pool_mode='avg'))
    boxes = data_samples[0].gt_instances_3d.bboxes_3d.tensor
    rois = torch.cat([torch.zeros(len(boxes), 1), boxes], 1)
    pooled = extractor(feats_dict['multi_scale_3d_feats'], feats_dict['multi_scale_3d_strides'],
                       rois)
    assert pooled.shape == (len(boxes), 6, 6, 6, 128) and torch.isfinite(pooled).all()
    pooled.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in extractor.parameters())
    feats = dict(feats_dict['multi_scale_3d_feats'])
    del feats['x_conv3']
    with pytest.raises(KeyError, match='x_conv3'):
        extractor(feats, feats_dict['multi_scale_3d_strides'], rois)
    with pytest.raises(ValueError, match='radii'):
        MODELS.build(dict(EXTRACTOR, radii=(0.2, 0.4)))
