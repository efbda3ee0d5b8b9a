"""Tests of ``GeminiPointFusion`` (GeminiFusion as MVX-Net's point fusion layer) on a real KITTI
frame, and of its two configs (stock MVX-Net with the fusion layer swapped) through loss/predict.

The per-point reference projects the point with ``lidar2img`` and samples the lateral-conv maps
bilinearly by hand, then fuses with the official-structure GeminiFusion loop
(``reference_fusion`` of test_gemini_fusion.py) and the official output rule
(softmax(alpha)-weighted sum of both updated features, ReLU).
"""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from mmfusion.models.fusion.gemini_point_fusion import GeminiPointFusion
from tests.test_models.test_gemini_fusion import _randomise, reference_fusion
from tests.test_models.test_mvxnet_cpu import loss_and_predict
from tests.utils import DEMO_MVXNET_CFG, REPO_ROOT, TINY_MVXNET_CFG, kitti_cfg_options

pytestmark = pytest.mark.default_scope('mmdet3d')

CFG_DIR = osp.join(REPO_ROOT, 'projects', 'GeminiFusion', 'configs')
FULL_CFG = osp.join(
    CFG_DIR, 'mvxnet_gemini-fusion_fpn_dv_second_secfpn_8xb2-80e_kitti-3d-3class.py')
SAMPLE_CFG = osp.join(
    CFG_DIR, 'mvxnet_gemini-fusion_fpn_dv_second_secfpn_1xb2-demo_kitti-sample-3d-3class.py')
STOCK_CFG = 'mmdet3d::mvxnet/mvxnet_fpn_dv_second_secfpn_8xb2-80e_kitti-3d-3class.py'

# Small module on the image itself as a 2-level "feature pyramid" (strides 4 and 8).
MODULE_ARGS = dict(img_channels=3, pts_channels=4, mid_channels=8, out_channels=16,
                   img_levels=[0, 1], num_heads=4, align_corners=False, activate_out=True)
STRIDES = (4, 8)
# A LiDAR point 30 m to the left and 2 m ahead: far outside the camera's field of view.
OUTSIDE_POINT = [2.0, 30.0, -1.0, 0.5]


@pytest.fixture(scope='module')
def kitti_frame(kitti_infos_root):
    """Frame 000000 through the tiny MVX-Net test pipeline (image resized to fit 640 x 192).

    Returns:
        dict: ``points`` (P, 4) LiDAR x, y, z (m), reflectance, a subsample plus
        ``OUTSIDE_POINT`` as the last row; ``img_feats`` 2 maps (1, 3, H/s, W/s) of the
        normalised image; ``meta`` the sample's metainfo with ``input_shape``.
    """
    from mmdet3d.registry import DATASETS, MODELS
    cfg = Config.fromfile(TINY_MVXNET_CFG)
    cfg.merge_from_dict(kitti_cfg_options(kitti_infos_root))
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    batch = preprocessor(pseudo_collate([dataset[0]]), training=False)
    img = batch['inputs']['imgs']  # (1, 3, H, W), padded to a multiple of 32
    meta = dict(batch['data_samples'][0].metainfo, input_shape=tuple(img.shape[-2:]))
    points = batch['inputs']['points'][0][::20]  # every 20th point: ~1k real points
    points = torch.cat([points, points.new_tensor([OUTSIDE_POINT])])
    img_feats = [F.avg_pool2d(img, s) / 50.0 for s in STRIDES]
    return dict(points=points, img_feats=img_feats, meta=meta)


def _hand_sample(feat, u, v, in_h, in_w):
    """Bilinear sample of feat (C, h, w) at input-image pixel (u, v), align_corners=False,
    zero outside: the map pixel centre j sits at input x = (j + 0.5) * in_w / w."""
    _, h, w = feat.shape
    fx, fy = u * w / in_w - 0.5, v * h / in_h - 0.5
    x0, y0 = int(np.floor(fx)), int(np.floor(fy))
    out = torch.zeros(feat.shape[0])
    for xi, yi in ((x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)):
        if 0 <= xi < w and 0 <= yi < h:
            out += (1 - abs(fx - xi)) * (1 - abs(fy - yi)) * feat[:, yi, xi]
    return out


def reference_point(module, frame, i):
    """Fused feature of point i by hand: projection, sampling, transforms, official fusion.

    Returns:
        tuple[Tensor, Tensor]: the sampled image vector (L * M,) and the output (C,).
    """
    meta, point = frame['meta'], frame['points'][i].double()
    lidar2img = torch.as_tensor(np.asarray(meta['lidar2img']), dtype=torch.float64)
    uvw = lidar2img @ torch.cat([point[:3], point.new_ones(1)])
    w_scale, h_scale = meta['scale_factor'][:2]
    u, v = float(uvw[0] / uvw[2]) * w_scale, float(uvw[1] / uvw[2]) * h_scale
    in_h, in_w = meta['input_shape']
    img_vec = torch.cat([
        _hand_sample(conv(feat)[0], u, v, in_h, in_w)
        for conv, feat in zip(module.lateral_convs, frame['img_feats'])])
    f_img = module.img_transform(img_vec[None])
    f_pts = module.pts_transform(frame['points'][i:i + 1])
    y_img, y_pts = reference_fusion(module.gemini_fusion, f_img[None], f_pts[None])
    w = torch.softmax(module.alpha, dim=0)
    return img_vec, F.relu(w[0] * y_img[0, 0] + w[1] * y_pts[0, 0])


def make_module(seed=0):
    torch.manual_seed(seed)
    module = GeminiPointFusion(**MODULE_ARGS)
    _randomise(module.gemini_fusion, seed)  # non-zero biases and noise everywhere
    with torch.no_grad():
        module.alpha.copy_(torch.tensor([0.3, -0.4]))  # unequal modality weights
        for bn in (module.img_transform[1], module.pts_transform[1]):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    return module.eval()


def _in_image(frame):
    """Indices of points projecting inside the image with positive depth."""
    meta, pts = frame['meta'], frame['points'][:, :3].double()
    lidar2img = torch.as_tensor(np.asarray(meta['lidar2img']), dtype=torch.float64)
    uvw = torch.cat([pts, pts.new_ones(len(pts), 1)], 1) @ lidar2img.T
    u, v = uvw[:, 0] / uvw[:, 2], uvw[:, 1] / uvw[:, 2]
    h, w = meta['ori_shape'][:2]
    return torch.nonzero((uvw[:, 2] > 1) & (u > 5) & (u < w - 5) & (v > 5) & (v < h - 5))[:, 0]


def test_matches_hand_reference_per_point(kitti_frame):
    module = make_module()
    meta = kitti_frame['meta']
    assert not meta.get('flip', False) and meta['scale_factor'][0] != 1  # resize is exercised
    with torch.no_grad():
        out = module([*kitti_frame['img_feats']], [kitti_frame['points']],
                     kitti_frame['points'], [meta])
        sampled = module.obtain_mlvl_feats(kitti_frame['img_feats'], [kitti_frame['points']],
                                           [meta])
        inside = _in_image(kitti_frame)
        assert len(inside) > 100
        for i in [int(inside[0]), int(inside[len(inside) // 2]), int(inside[-1])]:
            img_vec, ref = reference_point(module, kitti_frame, i)
            assert img_vec.abs().sum() > 0
            torch.testing.assert_close(sampled[i], img_vec.float(), atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(out[i], ref.float(), atol=1e-5, rtol=1e-4)


def test_point_outside_image_follows_point_fusion(kitti_frame):
    """Zero image feature (PointFusion's padding), still fused; PointFusion samples the same."""
    from mmdet3d.models.layers.fusion_layers import PointFusion
    module = make_module()
    args = {k: v for k, v in MODULE_ARGS.items() if k != 'num_heads'}
    stock = PointFusion(**args)
    stock.load_state_dict(module.state_dict(), strict=False)
    pts, feats, meta = [kitti_frame['points']], kitti_frame['img_feats'], kitti_frame['meta']
    with torch.no_grad():
        sampled = module.obtain_mlvl_feats(feats, pts, [meta])
        torch.testing.assert_close(sampled, stock.obtain_mlvl_feats(feats, pts, [meta]))
        assert torch.count_nonzero(sampled[-1]) == 0
        out = module(feats, pts, kitti_frame['points'], [meta])
        img_vec, ref = reference_point(module, kitti_frame, len(kitti_frame['points']) - 1)
    assert torch.count_nonzero(img_vec) == 0
    torch.testing.assert_close(out[-1], ref.float(), atol=1e-5, rtol=1e-4)
    assert out[-1].abs().sum() > 0  # the LiDAR side still carries the point


def test_shapes_and_points_independent_across_samples(kitti_frame):
    """(P, out_channels) for a batch of two; a point's output does not depend on other points."""
    module = make_module()
    pts = kitti_frame['points']
    half = pts[: len(pts) // 2]
    feats = [torch.cat([f, f.flip(-1)]) for f in kitti_frame['img_feats']]  # 2 samples
    metas = [kitti_frame['meta'], kitti_frame['meta']]
    with torch.no_grad():
        out = module(feats, [pts, half], torch.cat([pts, half]), metas)
        alone = module([f[1:] for f in feats], [half], half, metas[:1])
    assert out.shape == (len(pts) + len(half), MODULE_ARGS['out_channels'])
    assert torch.isfinite(out).all() and (out >= 0).all()  # activate_out: ReLU
    torch.testing.assert_close(out[len(pts):], alone)
    assert not torch.allclose(out[len(pts):], out[:len(half)])  # the flipped map differs


def test_gradient_flow(kitti_frame):
    module = make_module().train()
    pts = kitti_frame['points']
    pts_feats = pts.clone().requires_grad_(True)
    out = module(kitti_frame['img_feats'], [pts], pts_feats, [kitti_frame['meta']])
    out.square().mean().backward()
    assert pts_feats.grad.abs().sum() > 0
    c = MODULE_ARGS['out_channels']
    for name, p in module.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        grad = p.grad
        if name.endswith('in_proj_bias'):
            # softmax over two keys is invariant to a shared key bias: its gradient is exactly 0
            assert torch.count_nonzero(grad[c:2 * c]) == 0, name
            grad = torch.cat([grad[:c], grad[2 * c:]])
        assert grad.abs().sum() > 0, name


def test_invalid_arguments_raise(kitti_frame):
    with pytest.raises(ValueError, match='num_heads'):
        GeminiPointFusion(**dict(MODULE_ARGS, num_heads=5))
    with pytest.raises(ValueError, match='fusion_cfg'):
        GeminiPointFusion(**MODULE_ARGS, fusion_cfg=dict(embed_dims=8))
    module = make_module()
    pts = kitti_frame['points']
    with pytest.raises(ValueError, match='pts_feats'):
        module(kitti_frame['img_feats'], [pts], pts[1:], [kitti_frame['meta']])


def test_ablation_switch_passes_through():
    module = GeminiPointFusion(**MODULE_ARGS, fusion_cfg=dict(use_noise=False))
    assert module.gemini_fusion.k_noise is None and module.gemini_fusion.num_heads == 4


def _strip_scope(obj):
    """Drop the ``_scope_`` keys that mmengine adds to dicts inherited through ``mmdet3d::``."""
    if isinstance(obj, dict):
        return {k: _strip_scope(v) for k, v in obj.items() if k != '_scope_'}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_strip_scope(v) for v in obj)
    return obj


def _without_fusion_type(cfg_dict):
    cfg_dict = _strip_scope(copy.deepcopy(cfg_dict))
    cfg_dict['model']['pts_voxel_encoder']['fusion_layer'].pop('type')
    cfg_dict.pop('custom_imports', None)
    # the visualizer may be mmfusion's subclass of the stock one (pictures without open3d)
    cfg_dict.get('visualizer', {}).pop('type', None)
    # our configs add the RandomStateHook (bit-exact --resume); the stock ones have no hooks
    hooks = [h for h in cfg_dict.pop('custom_hooks', []) if h['type'] != 'RandomStateHook']
    if hooks:
        cfg_dict['custom_hooks'] = hooks
    return cfg_dict


@pytest.mark.parametrize('cfg_path,stock_path', [(FULL_CFG, STOCK_CFG),
                                                 (SAMPLE_CFG, DEMO_MVXNET_CFG)])
def test_config_is_stock_mvxnet_with_fusion_swapped(cfg_path, stock_path):
    from mmdet3d.registry import MODELS
    from mmengine.hub import get_config
    cfg = Config.fromfile(cfg_path)  # imports mmfusion.det3d through custom_imports
    stock = get_config(stock_path) if '::' in stock_path else Config.fromfile(stock_path)
    assert cfg.model.pts_voxel_encoder.fusion_layer.type == 'GeminiPointFusion'
    assert stock.model.pts_voxel_encoder.fusion_layer.type == 'PointFusion'
    assert _without_fusion_type(cfg.to_dict()) == _without_fusion_type(stock.to_dict())
    encoder = MODELS.build(cfg.model.pts_voxel_encoder)
    assert isinstance(encoder.fusion_layer, GeminiPointFusion)


def _tiny_widths(cfg_path, tmp_path):
    """``cfg_path`` with the tiny test config's model widths and pipelines, fusion type kept."""
    cfg, tiny = Config.fromfile(cfg_path), Config.fromfile(TINY_MVXNET_CFG)
    fusion_type = cfg.model.pts_voxel_encoder.fusion_layer.type
    cfg.model = tiny.model
    cfg.model.pts_voxel_encoder.fusion_layer.type = fusion_type
    cfg.train_dataloader.dataset.dataset.pipeline = tiny.train_pipeline
    cfg.test_dataloader.dataset.pipeline = tiny.test_pipeline
    path = str(tmp_path / osp.basename(cfg_path))
    cfg.dump(path)
    return path


@pytest.mark.parametrize('cfg_path', [FULL_CFG, SAMPLE_CFG])
def test_config_loss_and_predict_tiny_widths(cfg_path, kitti_infos_root, tmp_path):
    """Loss, backward and predict on the real KITTI sample (about 5 s each on 2 idle cores)."""
    loss_and_predict(_tiny_widths(cfg_path, tmp_path), kitti_infos_root)


@pytest.mark.slow
def test_sample_config_loss_and_predict(kitti_infos_root):
    """The sample config unchanged (ResNet-50 image branch): about 25 s on 2 idle CPU cores."""
    loss_and_predict(SAMPLE_CFG, kitti_infos_root)
