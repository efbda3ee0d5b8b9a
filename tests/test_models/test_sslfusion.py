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
    cfg, _ = sslfusion_cfg(path, kitti_infos_root)
    model = build(cfg)
    layers = fusion_layers(model)
    name = osp.basename(path)
    expected_layers = 1 if 'single-stage' in name else 4 if 'encoder-only' in name else 7
    assert len(layers) == expected_layers
    assert all((layer.sam.depth_embedding is None) == ('no-sam' in name) for layer in layers)
    mode = 'attention' if 'full-attention' in name else 'concat' if 'concat' in name else 'latent'
    assert all(layer.lfm.mode == mode for layer in layers)
    latents = 64 if 'latent64' in name else 256 if 'latent256' in name else \
        32 if 'kitti-sample' in name else 128
    assert all(layer.lfm.num_latents == latents for layer in layers)
    num_classes = 1 if 'dense-3d-car' in name else 3
    assert model.rpn_head.num_classes == num_classes
    assert model.roi_head.bbox_head.grid_size == 6
    if 'normeval-ft' in name:  # the overfit's second stage: BatchNorm frozen throughout
        assert cfg.custom_hooks == [dict(type='NormEvalHook', begin_iter=0)]
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
    for layer in fusion_layers(model):
        assert layer.lateral_conv.conv.weight.grad.abs().sum() > 0
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
