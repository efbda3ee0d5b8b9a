"""PerturbCalibration on the real KITTI sample: hand-computed matrices and projections.

The reference values come from the sample's own files (``training/calib/000000.txt``: P2,
R0_rect, Tr_velo_to_cam; ``training/label_2/000000.txt``: the pedestrian's camera-frame box),
not from the infos the transform reads, so a frame or order mix-up in the transform fails.
"""
import copy
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config

import mmfusion.det3d  # noqa: F401  (registers PerturbCalibration)
from mmfusion.datasets.transforms.calib_perturbation import PerturbCalibration, calib_error_matrix
from tests.utils import REPO_ROOT, TINY_MVXNET_CFG, kitti_cfg_options

pytestmark = pytest.mark.default_scope('mmdet3d')

KITTI = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data', 'kitti', 'training')
# configs whose test pipeline feeds lidar2img to an image+LiDAR model
SSLFUSION_SAMPLE_CFG = osp.join(
    REPO_ROOT, 'projects', 'SSLFusion', 'configs',
    'sslfusion_r18-fpn_voxel-rcnn_1xb2-overfit_kitti-sample-3d-3class.py')
CONFIGS = [TINY_MVXNET_CFG, SSLFUSION_SAMPLE_CFG]


def read_calib(frame='000000'):
    rows = {}
    with open(osp.join(KITTI, 'calib', frame + '.txt')) as f:
        for line in f:
            if ':' in line:
                key, vals = line.split(':', 1)
                rows[key] = np.array(vals.split(), dtype=np.float64)
    p2, r0, tr = np.eye(4), np.eye(4), np.eye(4)
    p2[:3] = rows['P2'].reshape(3, 4)
    r0[:3, :3] = rows['R0_rect'].reshape(3, 3)
    tr[:3] = rows['Tr_velo_to_cam'].reshape(3, 4)
    return p2, r0 @ tr


def project(mat, xyz):
    """Pixels (u, v) and projective depth w of camera/LiDAR points (N, 3) through (4, 4)."""
    uvw = (mat @ np.concatenate([xyz, np.ones((len(xyz), 1))], 1).T).T
    return uvw[:, :2] / uvw[:, 2:3], uvw[:, 2]


def ry(deg):
    c, s = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
    return np.array([[c, 0, s, 0], [0, 1, 0, 0], [-s, 0, c, 0], [0, 0, 0, 1]])


@pytest.fixture(scope='module', params=CONFIGS, ids=osp.basename)
def test_set(request, kitti_infos_root):
    """(config, the config's test dataset) on the converted sample (test mode, with GT)."""
    from mmdet3d.registry import DATASETS
    cfg = Config.fromfile(request.param)
    cfg.merge_from_dict(kitti_cfg_options(kitti_infos_root))
    return cfg, DATASETS.build(cfg.test_dataloader.dataset)


def loaded(test_set, idx=0):
    """Results of frame ``idx`` after the loading transforms (before TTA / packing)."""
    _, dataset = test_set
    results = dataset.get_data_info(idx)
    for t in dataset.pipeline.transforms[:2]:  # LoadPointsFromFile, LoadImageFromFile
        results = t(results)
    return results


def test_keys_come_from_the_calib_file(test_set):
    p2, lidar2cam = read_calib()
    results = loaded(test_set)
    np.testing.assert_allclose(results['lidar2cam'], lidar2cam, atol=1e-6)
    np.testing.assert_allclose(results['lidar2img'], p2 @ lidar2cam, rtol=1e-6, atol=1e-4)


def test_zero_perturbation_is_identity(test_set):
    results = loaded(test_set)
    before = copy.deepcopy(results)
    out = PerturbCalibration()(results)
    np.testing.assert_array_equal(out['calib_perturbation'], np.eye(4))
    for key in ('lidar2cam', 'lidar2img', 'cam2img'):
        np.testing.assert_allclose(out[key], before[key], atol=1e-9)
    np.testing.assert_array_equal(out['points'].tensor, before['points'].tensor)


def test_one_degree_yaw(test_set):
    p2, lidar2cam = read_calib()
    np.testing.assert_allclose(calib_error_matrix((0, 0, 1)), ry(1), atol=1e-12)
    results = loaded(test_set)
    clean_lidar2img = np.array(results['lidar2img'])
    out = PerturbCalibration(rotation_deg=(0, 0, 1))(results)
    np.testing.assert_allclose(out['lidar2cam'], ry(1) @ lidar2cam, atol=1e-6)
    np.testing.assert_allclose(out['lidar2img'], p2 @ ry(1) @ lidar2cam, rtol=1e-6, atol=1e-4)
    # a point 20 m ahead on the optical axis turns right by f_x tan(1 deg) (+ P2's offsets)
    cam_point = np.array([[0., 0., 20.]])
    lidar_point = (np.linalg.inv(lidar2cam) @ np.append(cam_point, 1))[None, :3]
    (u0, v0) = project(clean_lidar2img, lidar_point)[0][0]
    (u1, v1) = project(out['lidar2img'], lidar_point)[0][0]
    s, c = np.sin(np.deg2rad(1)), np.cos(np.deg2rad(1))
    fx, cx, tx, tz = p2[0, 0], p2[0, 2], p2[0, 3], p2[2, 3]
    assert u1 == pytest.approx((fx * 20 * s + cx * 20 * c + tx) / (20 * c + tz), abs=1e-3)
    assert u1 - u0 == pytest.approx(fx * np.tan(np.deg2rad(1)), rel=2e-3)  # ~12.3 px
    assert v1 == pytest.approx(v0, abs=0.05)


def test_ten_cm_x_shift_moves_real_points_by_fx_times_shift_over_depth(test_set):
    p2, _ = read_calib()
    results = loaded(test_set)
    points = results['points'].tensor.numpy()[::500, :3].astype(np.float64)
    uv0, w0 = project(results['lidar2img'], points)
    out = PerturbCalibration(translation_cm=(10, 0, 0))(results)
    uv1, w1 = project(out['lidar2img'], points)
    np.testing.assert_allclose(w1, w0, atol=1e-9)
    np.testing.assert_allclose(uv1[:, 0] - uv0[:, 0], p2[0, 0] * 0.1 / w0, rtol=1e-6)
    np.testing.assert_allclose(uv1[:, 1], uv0[:, 1], atol=1e-6)
    assert (uv1[:, 0] - uv0[:, 0]).max() > 5  # near points move several pixels


def test_projected_gt_box_centre_moves_as_predicted(test_set):
    """The GT pedestrian's bottom centre, from label_2 through P2 and the error, vs the
    LiDAR-frame GT box of the infos through the packed metainfo's lidar2img.

    (The bottom centre is the point both frames share exactly: mmdet3d converts a box's bottom
    centre between frames and keeps its height along each frame's own vertical axis.)
    """
    p2, _ = read_calib()
    with open(osp.join(KITTI, 'label_2', '000000.txt')) as f:
        fields = f.read().split()
    cam_centre = np.array([[float(v) for v in fields[11:14]]])  # bottom centre, camera frame
    t_err = calib_error_matrix((0.5, -0.3, 2), (4, -3, 8))
    expected, _ = project(p2 @ t_err, cam_centre)

    cfg, dataset = test_set
    pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    pipeline.insert(2, dict(type='PerturbCalibration', rotation_deg=(0.5, -0.3, 2),
                            translation_cm=(4, -3, 8)))
    from mmengine.dataset import Compose
    packed = Compose(pipeline)(dataset.get_data_info(0))
    sample = packed['data_samples']
    gt = sample.eval_ann_info['gt_bboxes_3d']  # LiDAR frame, from the infos: unchanged
    lidar_centre = gt.bottom_center.numpy().astype(np.float64)
    got, _ = project(np.asarray(sample.metainfo['lidar2img']), lidar_centre)
    np.testing.assert_allclose(got, expected, atol=0.01)
    clean, _ = project(p2, cam_centre)
    assert np.abs(got - clean).max() > 20  # the error is visible (2 deg yaw: ~25 px)
    # points untouched by the transform (same as a pipeline without it)
    plain = dataset[0]['inputs']['points']
    np.testing.assert_array_equal(packed['inputs']['points'].numpy(), plain.numpy())
    np.testing.assert_allclose(np.asarray(sample.metainfo['lidar2cam']),
                               t_err @ read_calib()[1], atol=1e-6)


def test_every_camera_is_updated_consistently(test_set):
    results = loaded(test_set)
    t_err = calib_error_matrix((0.2, 0.4, -1), (3, 2, -5))
    cams = copy.deepcopy(results['images'])
    out = PerturbCalibration(rotation_deg=(0.2, 0.4, -1), translation_cm=(3, 2, -5))(results)
    cams = {name: cam for name, cam in cams.items() if isinstance(cam, dict)}  # not R0_rect
    assert sorted(cams) == ['CAM0', 'CAM1', 'CAM2', 'CAM3']
    for name, cam in cams.items():
        cam2img = np.asarray(cam['cam2img'])
        lidar2cam = np.asarray(cam.get('lidar2cam', np.linalg.inv(cam2img) @ np.asarray(
            cam['lidar2img'])))
        np.testing.assert_allclose(np.asarray(out['images'][name]['lidar2img']),
                                   cam2img @ t_err @ lidar2cam, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(np.asarray(out['images']['CAM2']['lidar2img']),
                               out['lidar2img'], atol=1e-6)


def test_random_axis_magnitude_and_determinism(test_set):
    from scipy.spatial.transform import Rotation
    results = loaded(test_set)
    transform = PerturbCalibration(rotation_deg=1.5, translation_cm=12, seed=3)
    t_err = transform.error_matrix(results)
    assert np.rad2deg(Rotation.from_matrix(t_err[:3, :3]).magnitude()) == pytest.approx(1.5)
    assert np.linalg.norm(t_err[:3, 3]) == pytest.approx(0.12)
    np.testing.assert_array_equal(
        PerturbCalibration(rotation_deg=1.5, translation_cm=12, seed=3).error_matrix(results),
        t_err)  # a new instance (a new run) draws the same error for the frame
    assert not np.allclose(transform.error_matrix(loaded(test_set, 1)), t_err)
    assert not np.allclose(PerturbCalibration(1.5, 12, seed=4).error_matrix(results), t_err)
    # fixed rotation with a random translation direction
    mixed = PerturbCalibration(rotation_deg=(0, 0, 1), translation_cm=10).error_matrix(results)
    np.testing.assert_allclose(mixed[:3, :3], ry(1)[:3, :3], atol=1e-12)
    assert np.linalg.norm(mixed[:3, 3]) == pytest.approx(0.1)


def test_errors(test_set):
    with pytest.raises(ValueError, match='magnitude'):
        PerturbCalibration(rotation_deg=-1)
    with pytest.raises(ValueError, match='3 finite numbers'):
        PerturbCalibration(translation_cm=(1, 2))
    with pytest.raises(KeyError, match="'lidar2cam'"):
        PerturbCalibration(rotation_deg=(0, 0, 1))(dict(cam2img=np.eye(4)))
    with pytest.raises(KeyError, match='lidar_path nor sample_idx'):
        PerturbCalibration(rotation_deg=1)(dict(lidar2cam=np.eye(4), cam2img=np.eye(4)))
    with pytest.raises(ValueError, match=r'lidar2cam must be \(3, 3\), \(3, 4\) or \(4, 4\)'):
        PerturbCalibration(rotation_deg=(0, 0, 1))(dict(lidar2cam=np.eye(2), cam2img=np.eye(4)))
