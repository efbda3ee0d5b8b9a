"""``GeminiDynamicVFE`` (GeminiFusion after every VFE layer, the official KITTI voxel encoder)
on a real KITTI frame: equal to the official ``DynamicVFE_modified.forward`` loop written out
here from the module's pieces; LiDAR-only when no image features come; the per-layer widths.
"""
import pytest
import torch

from mmfusion.models.voxel_encoders.gemini_dynamic_vfe import GeminiDynamicVFE
from tests.test_models.test_gemini_fusion import _randomise
from tests.test_models.test_gemini_point_fusion import kitti_frame  # noqa: F401  (fixture)

pytestmark = pytest.mark.default_scope('mmdet3d')

VOXEL = [0.4, 0.4, 0.5]
PC_RANGE = [0, -40, -3, 70.4, 40, 1]
FUSION = dict(type='GeminiPointFusion', img_channels=3, pts_channels=16, mid_channels=32,
              out_channels=32, img_levels=[0, 1], num_heads=4, align_corners=False)


def _encoder(seed=0):
    torch.manual_seed(seed)
    import mmfusion.det3d  # noqa: F401
    vfe = GeminiDynamicVFE(in_channels=4, feat_channels=[16, 16], with_cluster_center=True,
                           with_voxel_center=True, voxel_size=VOXEL,
                           point_cloud_range=PC_RANGE, fusion_layer=FUSION)
    for k, fusion in enumerate(vfe.fusion_layers):
        _randomise(fusion.gemini_fusion, seed + k)
    return vfe.eval()


def _voxelise(points):
    """Dynamic voxelisation: points inside the range and their (batch, z, y, x) voxel."""
    low, size = torch.tensor(PC_RANGE[:3]), torch.tensor(VOXEL)
    grid = torch.round((torch.tensor(PC_RANGE[3:]) - low) / size).long()
    idx = torch.floor((points[:, :3] - low) / size).long()
    keep = ((idx >= 0) & (idx < grid)).all(1)
    points, idx = points[keep], idx[keep]
    coors = torch.cat([idx.new_zeros(len(idx), 1), idx.flip(1)], 1)  # (b, z, y, x)
    return points, coors


def official_forward(vfe, features, coors, points, img_feats, img_metas):
    """``DynamicVFE_modified.forward`` (cluster and voxel-centre decorations, then per VFE
    layer: Linear-BN-ReLU, fusion, scatter-max, concat with the voxel feature per point)."""
    voxel_mean, mean_coors = vfe.cluster_scatter(features, coors)
    points_mean = vfe.map_voxel_center_to_point(coors, voxel_mean, mean_coors)
    f_cluster = features[:, :3] - points_mean[:, :3]
    f_center = torch.stack([
        features[:, 0] - (coors[:, 3].type_as(features) * vfe.vx + vfe.x_offset),
        features[:, 1] - (coors[:, 2].type_as(features) * vfe.vy + vfe.y_offset),
        features[:, 2] - (coors[:, 1].type_as(features) * vfe.vz + vfe.z_offset)], 1)
    x = torch.cat([features, f_cluster, f_center], dim=-1)
    for i, layer in enumerate(vfe.vfe_layers):
        point_feats = layer[2](layer[1](layer[0](x)))  # the children: no hook
        point_feats = vfe.fusion_layers[i](img_feats, points, point_feats, img_metas)
        voxel_feats, voxel_coors = vfe.vfe_scatter(point_feats, coors)
        if i != len(vfe.vfe_layers) - 1:
            x = torch.cat([point_feats, vfe.map_voxel_center_to_point(
                coors, voxel_feats, voxel_coors)], dim=1)
    return voxel_feats, voxel_coors


def test_equals_official_loop_on_kitti_frame(kitti_frame):  # noqa: F811
    vfe = _encoder()
    points, coors = _voxelise(kitti_frame['points'])
    args = (points, coors, [points], kitti_frame['img_feats'], [kitti_frame['meta']])
    with torch.no_grad():
        feats, voxel_coors = vfe(*args)
        ref_feats, ref_coors = official_forward(vfe, *args)
    assert feats.shape == (len(voxel_coors), 32) and len(voxel_coors) > 100
    assert torch.equal(voxel_coors, ref_coors)
    torch.testing.assert_close(feats, ref_feats, rtol=1e-6, atol=1e-6)
    # the first fusion matters: perturbing it changes the voxel features
    with torch.no_grad():
        vfe.fusion_layers[0].alpha.add_(torch.tensor([2.0, -2.0]))
        assert (vfe(*args)[0] - feats).abs().max() > 1e-3
    assert vfe._image_inputs is None  # nothing held after the call


def test_without_image_is_the_stock_lidar_encoder(kitti_frame):  # noqa: F811
    from mmdet3d.models.voxel_encoders import DynamicVFE
    vfe = _encoder()
    stock = DynamicVFE(in_channels=4, feat_channels=[16, 16], with_cluster_center=True,
                       with_voxel_center=True, voxel_size=VOXEL,
                       point_cloud_range=PC_RANGE).eval()
    unexpected = stock.load_state_dict(vfe.state_dict(), strict=False).unexpected_keys
    assert unexpected and all(k.startswith('fusion_layers.') for k in unexpected)
    points, coors = _voxelise(kitti_frame['points'])
    with torch.no_grad():
        ours, stock_out = vfe(points, coors), stock(points, coors)
    assert torch.equal(ours[0], stock_out[0]) and ours[0].shape[1] == 16


def test_widths_and_errors():
    vfe = _encoder()
    first, last = vfe.fusion_layers
    assert first.out_channels == 16 and first.lateral_convs[0].conv.out_channels == 16
    assert last.out_channels == 32 and last.lateral_convs[0].conv.out_channels == 32
    with pytest.raises(ValueError, match='needs a fusion_layer'):
        GeminiDynamicVFE(in_channels=4, feat_channels=[16, 16])
    with pytest.raises(ValueError, match='pts_channels'):
        GeminiDynamicVFE(in_channels=4, feat_channels=[16, 8], fusion_layer=FUSION)


def test_two_layer_config_loss_and_predict_tiny_widths(kitti_infos_root, tmp_path):
    """The two-layer config's model at the tiny test widths: loss, backward, predict on the
    real KITTI sample."""
    from mmengine.config import Config

    from tests.test_models.test_gemini_point_fusion import CFG_DIR, _tiny_widths
    from tests.test_models.test_mvxnet_cpu import loss_and_predict
    path = _tiny_widths(
        f'{CFG_DIR}/mvxnet_gemini-fusion-2layer_fpn_dv_second_secfpn_8xb2-80e_kitti-3d-3class.py',
        tmp_path)
    cfg = Config.fromfile(path)
    cfg.model.pts_voxel_encoder.type = 'GeminiDynamicVFE'  # the tiny model's encoder, swapped
    cfg.dump(path)
    loss_and_predict(path, kitti_infos_root)
