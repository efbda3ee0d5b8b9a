"""SSLFusion detector and configs on the real KITTI sample (CPU): every config builds with its
ablation switch in place; the sample config runs loss, backward and predict; the fused sparse
U-Net uses the image and its multi-scale outputs have the documented strides; every full-size
config runs loss and predict (slow)."""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from tests.utils import REPO_ROOT

pytestmark = pytest.mark.default_scope('mmdet3d')

CONFIG_DIR = osp.join(REPO_ROOT, 'projects', 'SSLFusion', 'configs')
CONFIGS = sorted(glob.glob(osp.join(CONFIG_DIR, '*.py')))
SAMPLE_CFG = osp.join(CONFIG_DIR,
                      'sslfusion_r18-fpn_voxel-rcnn_1xb2-overfit_kitti-sample-3d-3class.py')


def sslfusion_cfg(path, data_root):
    """The config pointed at the converted KITTI sample, without pretrained image weights."""
    cfg = Config.fromfile(path)
    data_root = data_root.rstrip('/') + '/'
    train = cfg.train_dataloader.dataset
    train = train.dataset if train.type == 'RepeatDataset' else train
    for ds in (train, cfg.test_dataloader.dataset):
        ds.data_root = data_root
        ds.ann_file = 'kitti_infos_trainval.pkl'
        ds.data_prefix = dict(pts='training/velodyne_reduced', img='training/image_2')
        for t in ds.pipeline:  # the DENSE config reads 5-feature points; the sample has 4
            if t.type == 'LoadPointsFromFile':
                t.load_dim = 4
            if t.type == 'MultiModalObjectSample':  # the sample's GT database
                t.db_sampler.update(data_root=data_root,
                                    info_path=data_root + 'kitti_dbinfos_train.pkl')
    cfg.model.img_backbone.init_cfg = None
    return cfg, train


def build(cfg):
    from mmdet3d.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def loss_and_predict(cfg, train_cfg):
    from mmdet3d.registry import DATASETS
    model = build(cfg)
    train_set = DATASETS.build(train_cfg)
    batch = model.data_preprocessor(pseudo_collate([train_set[2], train_set[3]]), training=True)
    losses = model.loss(batch['inputs'], batch['data_samples'])
    assert {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_corner'} <= set(losses)
    total = sum(sum(v) if isinstance(v, list) else v for v in losses.values())
    assert torch.isfinite(total)
    total.backward()

    model.eval()
    test_set = DATASETS.build(cfg.test_dataloader.dataset)
    with torch.no_grad():
        batch = model.data_preprocessor(pseudo_collate([test_set[3]]), training=False)
        results = model.predict(batch['inputs'], batch['data_samples'])
    pred = results[0].pred_instances_3d
    assert len(pred.bboxes_3d) == len(pred.scores_3d) == len(pred.labels_3d)
    assert torch.isfinite(pred.bboxes_3d.tensor).all()
    return model


def fusion_layers(model):
    from mmfusion.models.fusion.scale_aligned_fusion import SSLFusionLayer
    return [m for m in model.middle_encoder.modules() if isinstance(m, SSLFusionLayer)]


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds_with_its_switches(path, kitti_infos_root):
    cfg, train_cfg = sslfusion_cfg(path, kitti_infos_root)
    model = build(cfg)
    layers = fusion_layers(model)
    name = osp.basename(path)
    expected_layers = 1 if 'single-stage' in name else 4 if 'encoder-only' in name else 7
    assert len(layers) == expected_layers
    # official: one lateral conv per fused image level, shared by encoder and decoder
    mids = cfg.model.middle_encoder.mid_channels
    levels = (3, ) if 'single-stage' in name else (0, 1, 2, 3)
    assert {k: c.conv.out_channels for k, c in model.middle_encoder.lateral_convs.items()} == \
        {str(level): mids[level] for level in levels}
    assert all(layer.lateral_conv is None for layer in layers)
    assert cfg.model.img_neck.upsample_cfg == dict(mode='bilinear')
    assert type(model.roi_head.bbox_head).__name__ == 'VoxelRCNNBBoxHead'
    assigners = cfg.model.train_cfg.rpn.assigner
    for assigner in [assigners] if isinstance(assigners, dict) else assigners:
        assert 0 < assigner['min_pos_iou'] <= 1e-6  # forced best-anchor match, as OpenPCDet
    assert all((layer.sam.depth_embedding is None) == ('no-sam' in name) for layer in layers)
    mode = 'attention' if 'full-attention' in name else 'concat' if 'concat' in name else 'latent'
    assert all(layer.lfm.mode == mode for layer in layers)
    latents = 64 if 'latent64' in name else 256 if 'latent256' in name else \
        32 if 'kitti-sample' in name else 128
    assert all(layer.lfm.num_latents == latents for layer in layers)
    num_classes = 1 if 'dense-3d-car' in name else 3
    assert model.rpn_head.num_classes == num_classes
    assert model.roi_head.bbox_head.grid_size == 6
    # GT sampling into points and image as the official KITTI yaml (the DENSE yaml has none)
    samplers = [t for t in train_cfg.pipeline if t.type == 'MultiModalObjectSample']
    if 'kitti-3d-3class' in name or 'gt-sampling' in name:
        assert len(samplers) == 1
        assert [t.type for t in train_cfg.pipeline].index('MultiModalObjectSample') == 3
        assert samplers[0].db_sampler.sample_groups == dict(Car=15, Pedestrian=10, Cyclist=10)
        assert samplers[0].iou_2d_thr == 0.5
    else:
        assert not samplers
    if 'normeval-ft' in name:  # the overfit's second stage: BatchNorm frozen throughout
        assert cfg.custom_hooks == [dict(type='NormEvalHook', begin_iter=0),
                                    dict(type='RandomStateHook')]
        assert cfg.load_from.endswith('sslfusion_kitti_sample_overfit/epoch_15.pth')
    if 'r50' in name:
        assert model.img_backbone.depth == 50
        assert all(not p.requires_grad for p in model.img_backbone.parameters())


def test_sample_config_loss_backward_predict(kitti_infos_root):
    cfg, train_cfg = sslfusion_cfg(SAMPLE_CFG, kitti_infos_root)
    model = loss_and_predict(cfg, train_cfg)
    # gradients reach the image branch through SAF, the fusion layers and the RoI head
    for name in ('img_backbone.conv1.weight', 'img_neck.lateral_convs.0.conv.weight'):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    for conv in model.middle_encoder.lateral_convs.values():
        assert conv.conv.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.roi_head.bbox_roi_extractor.parameters())


def test_fused_backbone_uses_the_image_and_keeps_strides(kitti_infos_root):
    from mmdet3d.registry import DATASETS
    cfg, _ = sslfusion_cfg(SAMPLE_CFG, kitti_infos_root)
    model = build(cfg).eval()
    test_set = DATASETS.build(cfg.test_dataloader.dataset)
    batch = model.data_preprocessor(pseudo_collate([test_set[2]]), training=False)
    inputs = model._with_metas(batch['inputs'], batch['data_samples'])
    with torch.no_grad():
        feats = model.extract_feat(inputs)
        dark = model.extract_feat(dict(inputs, imgs=torch.zeros_like(inputs['imgs'])))
    # the BEV map depends on the image (fusion is live)
    assert not torch.allclose(feats['spatial_features'], dark['spatial_features'])
    strides = feats['multi_scale_3d_strides']
    assert strides == {'x_conv1': 1, 'x_conv2': 2, 'x_conv3': 4, 'x_conv4': 8}
    shape = cfg.model.middle_encoder.sparse_shape
    for key, x in feats['multi_scale_3d_feats'].items():
        s = strides[key]
        assert x.spatial_shape[1:] == [shape[1] // s, shape[2] // s]
    # decoder outputs live on the encoder's voxels (skip connections on the same indices)
    coors = inputs['voxels']['coors']
    x1 = feats['multi_scale_3d_feats']['x_conv1']
    assert x1.indices.shape[0] == coors.shape[0]
    assert feats['spatial_features'].shape[1] == 2 * cfg.model.middle_encoder.get(
        'output_channels', 128)

    # without the image branch's fusion the same voxels go through unchanged conv paths
    cfg_lidar = copy.deepcopy(cfg)
    cfg_lidar.model.middle_encoder.fusion = None
    lidar_only = build(cfg_lidar).eval()
    assert not fusion_layers(lidar_only)
    with torch.no_grad():
        out = lidar_only.extract_feat(inputs)
        out_dark = lidar_only.extract_feat(dict(inputs, imgs=torch.zeros_like(inputs['imgs'])))
    assert torch.equal(out['spatial_features'], out_dark['spatial_features'])


def test_missing_image_is_a_clear_error(kitti_infos_root):
    from mmdet3d.registry import DATASETS
    cfg, train_cfg = sslfusion_cfg(SAMPLE_CFG, kitti_infos_root)
    model = build(cfg)
    batch = model.data_preprocessor(
        pseudo_collate([DATASETS.build(train_cfg)[2]]), training=True)
    inputs = dict(batch['inputs'])
    inputs.pop('imgs')
    with pytest.raises(KeyError, match='imgs'):
        model.loss(inputs, batch['data_samples'])


@pytest.mark.slow
@pytest.mark.parametrize('path', [p for p in CONFIGS if p != SAMPLE_CFG], ids=osp.basename)
def test_full_config_loss_and_predict(path, kitti_infos_root):
    """Full-size models (ResNet-50, 0.05 m voxels): about a minute each on 2 CPU cores."""
    cfg, train_cfg = sslfusion_cfg(path, kitti_infos_root)
    loss_and_predict(cfg, train_cfg)


# ----------------------------------------------------------------- details as OpenPCDet

KITTI_CFG = osp.join(CONFIG_DIR, 'sslfusion_r50-fpn_voxel-rcnn_4xb4-80e_kitti-3d-3class.py')


def test_rpn_forced_best_anchor_match():
    """OpenPCDet's AxisAlignedTargetAssigner: each GT's best anchors are positive at any BEV IoU
    > 0 (here 0.2, below the Car unmatched threshold 0.45), anchors without overlap stay
    negative."""
    from mmdet3d.registry import TASK_UTILS
    from mmengine.structures import InstanceData

    import mmfusion.det3d  # noqa: F401
    cfg = Config.fromfile(KITTI_CFG)
    car = cfg.model.train_cfg.rpn.assigner[2]
    assert (car.pos_iou_thr, car.neg_iou_thr) == (0.6, 0.45)
    # Car anchors (3.9 x 1.6 m, yaw 0) at x = 10, 12, 20 m; a GT 3.9 x 1.6 m at x = 13.5 m
    anchors = torch.tensor([[x, 0., -1.78, 3.9, 1.6, 1.56, 0.] for x in (10., 12., 20.)])
    gt = InstanceData(bboxes_3d=torch.tensor([[13.5, 0., -1.78, 3.9, 1.6, 1.56, 0.]]),
                      labels_3d=torch.tensor([2]))
    overlaps = TASK_UTILS.build(car.iou_calculator)(gt.bboxes_3d, anchors)[0]
    assert overlaps[1] == overlaps.max() and 0.2 < overlaps[1] < 0.45 and overlaps[2] == 0
    result = TASK_UTILS.build(car).assign(InstanceData(priors=anchors), gt)
    assert result.gt_inds.tolist() == [0, 1, 0]  # the best anchor is positive, others negative
    # with the former min_pos_iou (= the unmatched threshold) the GT had no positive anchor
    former = TASK_UTILS.build(dict(car, min_pos_iou=0.45))
    assert former.assign(InstanceData(priors=anchors), gt).gt_inds.tolist() == [0, 0, 0]


def test_roi_head_prediction_layers_initialised_as_openpcdet():
    from mmdet3d.registry import MODELS

    import mmfusion.det3d  # noqa: F401
    cfg = Config.fromfile(KITTI_CFG)
    torch.manual_seed(0)
    head = MODELS.build(cfg.model.roi_head.bbox_head)
    head.init_weights()
    cls_pred, reg_pred = head.cls_layer[-1], head.reg_layer[-1]
    assert abs(cls_pred.weight.std().item() - 0.01) < 0.002
    assert abs(reg_pred.weight.std().item() - 0.001) < 0.0002
    assert not cls_pred.bias.any() and not reg_pred.bias.any()
    # hidden FC layers: Xavier-normal, std = sqrt(2 / (fan_in + fan_out))
    hidden = [m for layers in (head.shared_fc_layer, head.cls_layer, head.reg_layer)
              for m in layers.modules()
              if isinstance(m, torch.nn.Conv2d) and m not in (cls_pred, reg_pred)]
    assert len(hidden) == 6
    for conv in hidden:
        fan_out, fan_in = conv.weight.shape[:2]
        expected = (2.0 / (fan_in + fan_out))**0.5
        assert abs(conv.weight.std().item() - expected) < 0.1 * expected
        assert conv.bias is None or not conv.bias.any()


def test_fpn_upsamples_bilinearly():
    """The official fpn.py overrides the upsampling mode to bilinear."""
    from mmdet3d.registry import MODELS

    import mmfusion.det3d  # noqa: F401
    cfg = Config.fromfile(KITTI_CFG)
    neck = MODELS.build(cfg.model.img_neck).eval()
    torch.manual_seed(0)
    channels = (256, 512, 1024, 2048)
    feats = [torch.randn(1, c, 64 // 2**i, 64 // 2**i) for i, c in enumerate(channels)]
    with torch.no_grad():
        out = neck(feats)
        lateral = [conv(feats[i + 1]) for i, conv in enumerate(neck.lateral_convs)]
        top = lateral[1] + torch.nn.functional.interpolate(
            lateral[2], size=lateral[1].shape[2:], mode='bilinear')
        expected = neck.fpn_convs[1](top)
    assert [o.shape[-1] for o in out] == [32, 16, 8, 4, 2]  # strides 8 .. 128 of the input
    torch.testing.assert_close(out[1], expected)


def test_lateral_convs_shared_by_encoder_and_decoder(kitti_infos_root):
    from mmdet3d.registry import MODELS
    cfg, _ = sslfusion_cfg(SAMPLE_CFG, kitti_infos_root)
    encoder_cfg = copy.deepcopy(cfg.model.middle_encoder)
    shared = MODELS.build(encoder_cfg)
    own = MODELS.build(dict(encoder_cfg, shared_lateral_convs=False))
    assert len(shared.lateral_convs) == 4 and own.lateral_convs is None
    own_convs = [m.lateral_conv for m in own.modules() if hasattr(m, 'lateral_conv')]
    assert len(own_convs) == 7 and all(c is not None for c in own_convs)
    n_shared = sum(p.numel() for p in shared.lateral_convs.parameters())
    n_own = sum(p.numel() for c in own_convs for p in c.parameters())
    img, mids = 64, (16, 32, 64, 64)  # the sample config's FPN width and fusion widths
    assert n_shared == sum(9 * img * m + 2 * m for m in mids)
    assert n_own == n_shared + sum(9 * img * m + 2 * m for m in mids[:3])
    # one level read at two widths cannot share a conv
    with pytest.raises(ValueError, match='shared lateral conv'):
        MODELS.build(dict(encoder_cfg, decoder_img_levels=(1, 1, 0)))


def test_gt_sampling_sample_config_loss_and_predict(kitti_infos_root):
    """The sample config with multimodal GT sampling: a training batch carries pasted objects
    and the model runs loss, backward and predict on it."""
    import numpy as np
    from mmdet3d.registry import DATASETS
    cfg, train_cfg = sslfusion_cfg(
        osp.join(CONFIG_DIR, 'sslfusion_r18-fpn_voxel-rcnn_1xb2-gt-sampling-overfit_'
                 'kitti-sample-3d-3class.py'), kitti_infos_root)
    _, plain_cfg = sslfusion_cfg(SAMPLE_CFG, kitti_infos_root)
    counts = []
    for dataset_cfg in (plain_cfg, train_cfg):
        np.random.seed(0)  # val frame 000004, objects pasted from the train frames
        counts.append(len(DATASETS.build(dataset_cfg)[4]['data_samples'].gt_instances_3d))
    assert counts[0] < counts[1] <= counts[0] + 35
    loss_and_predict(cfg, train_cfg)
