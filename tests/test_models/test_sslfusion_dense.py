"""The SSLFusion DENSE config on ``create_data.py dense`` output.

DENSE / SeeingThroughFog forbids redistributing its frames, so the test writes two frames in the
official layout (``cam_stereo_left_lut/``, ``lidar_hdl64_strongest/`` with 5 features per point,
``gt_labels/cam_left_labels_TMP/``, the official split files ``train_all_FOV3000_60`` and
``test_clear_FOV3000_25``, and the official calibration values of
tests/test_converters/test_dense.py): cars are boxes in the LiDAR frame filled with points, their
labels written in the camera frame with the calibration's ``lidar2cam``. The converter runs, then
the DENSE config's own datasets (only ``data_root`` re-pointed) must give back the cars in the
LiDAR frame, and (slow) the full DENSE model runs loss and predict on them.
"""
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from PIL import Image

from tests.test_converters.test_dense import TF_TREE, P
from tests.utils import REPO_ROOT

pytestmark = pytest.mark.default_scope('mmdet3d')

DENSE_CFG = osp.join(REPO_ROOT, 'projects', 'SSLFusion', 'configs',
                     'sslfusion_r50-fpn_voxel-rcnn_4xb2-80e_dense-3d-car.py')
SPLITS = {'train_all_FOV3000_60': ['2018-02-06_14-25-51_00400', '2018-02-07_10-00-00_00010'],
          'test_clear_FOV3000_25': ['2019-01-09_08-30-00_00100']}
# cars in the LiDAR frame: x, y, z of the bottom centre (m), l, w, h (m), yaw (rad)
CARS = {
    '2018-02-06_14-25-51_00400': [[15.0, 2.0, -1.7, 3.9, 1.6, 1.5, 0.2],
                                  [25.0, -4.0, -1.7, 4.2, 1.7, 1.5, -0.3]],
    '2018-02-07_10-00-00_00010': [[12.0, -1.0, -1.7, 3.9, 1.6, 1.5, 0.0]],
    '2019-01-09_08-30-00_00100': [[18.0, 3.0, -1.7, 4.0, 1.6, 1.5, 1.2]],
}
TAIL = '0.0 0.1 0.0 0.9 0.0 0.0 0.0 1.0 True True True False'  # DENSE's 12 extra fields


def _points(cars, rng):
    """Ground points plus 400 points inside each car, (N, 5): x y z intensity ring."""
    ground = np.stack([rng.uniform(2, 60, 3000), rng.uniform(-20, 20, 3000),
                       np.full(3000, -1.7)], axis=1)
    parts = [ground]
    for x, y, z, length, width, height, yaw in cars:
        local = rng.uniform(-0.5, 0.5, (400, 3)) * [length, width, height] + [0, 0, height / 2]
        c, s = np.cos(yaw), np.sin(yaw)
        parts.append(local @ np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]]) + [x, y, z])
    xyz = np.concatenate(parts)
    extra = np.stack([rng.uniform(0, 1, len(xyz)), rng.integers(0, 64, len(xyz))], axis=1)
    return np.concatenate([xyz, extra], axis=1).astype(np.float32)


def _label_lines(cars, calib):
    """KITTI label lines (camera frame) of LiDAR-frame cars, plus DENSE's extra fields."""
    from mmdet3d.structures import Box3DMode, LiDARInstance3DBoxes
    lidar = LiDARInstance3DBoxes(torch.tensor(cars, dtype=torch.float32))
    lidar2cam = torch.tensor(calib['lidar2cam'], dtype=torch.float32)
    cam = lidar.convert_to(Box3DMode.CAM, rt_mat=lidar2cam)
    corners = np.concatenate([lidar.corners.reshape(-1, 3).numpy(), np.ones((8 * len(cars), 1))],
                             axis=1) @ np.asarray(calib['lidar2img']).T
    uv = (corners[:, :2] / corners[:, 2:3]).reshape(len(cars), 8, 2)
    lines = []
    for box, pix in zip(cam.tensor.tolist(), uv):
        x, y, z, length, height, width, ry = box
        u0, v0 = np.clip(pix.min(0), 0, [1919, 1023])
        u1, v1 = np.clip(pix.max(0), 0, [1919, 1023])
        lines.append(f'PassengerCar 0.0 0 {ry:.4f} {u0:.2f} {v0:.2f} {u1:.2f} {v1:.2f} '
                     f'{height:.4f} {width:.4f} {length:.4f} {x:.4f} {y:.4f} {z:.4f} {ry:.4f} '
                     + TAIL)
    return lines


@pytest.fixture(scope='module')
def dense_root(tmp_path_factory):
    """(official-layout DENSE root, converted data_root) for the two official splits."""
    from mmfusion.converters.dense import create_dense_infos, load_dense_calib
    root = tmp_path_factory.mktemp('dense_official')
    for folder in ('cam_stereo_left_lut', 'lidar_hdl64_strongest',
                   'gt_labels/cam_left_labels_TMP', 'splits', 'calib'):
        os.makedirs(root / folder)
    (root / 'calib' / 'calib_cam_stereo_left.json').write_text(
        json.dumps({'P': P, 'width': 1920, 'height': 1024}))
    (root / 'calib' / 'calib_tf_tree_full.json').write_text(json.dumps(TF_TREE))
    calib = load_dense_calib(str(root / 'calib'))
    rng = np.random.default_rng(0)
    for idx, cars in CARS.items():
        Image.fromarray(rng.integers(0, 255, (1024, 1920, 3), dtype=np.uint8)).save(
            root / 'cam_stereo_left_lut' / f'{idx}.png')
        _points(cars, rng).tofile(root / 'lidar_hdl64_strongest' / f'{idx}.bin')
        (root / 'gt_labels/cam_left_labels_TMP' / f'{idx}.txt').write_text(
            '\n'.join(_label_lines(cars, calib)) + '\n')
    for split, ids in SPLITS.items():
        (root / 'splits' / f'{split}.txt').write_text(
            ''.join(i[:19] + ',' + i[20:] + '\n' for i in ids))
    out = tmp_path_factory.mktemp('dense_infos')
    paths = create_dense_infos(str(root), str(out))
    assert set(paths) == set(SPLITS) | {'report'}  # plus conversion_report.json
    return str(out) + '/'


def _dense_cfg(data_root):
    cfg = Config.fromfile(DENSE_CFG)
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        # data/dense_infos/ of the repository, wherever the run starts (relative to the config)
        assert osp.normpath(loader.dataset.data_root) == osp.join(REPO_ROOT, 'data', 'dense_infos')
        loader.dataset.data_root = data_root
    cfg.model.img_backbone.init_cfg = None
    return cfg


def test_dense_config_reads_the_converted_official_splits(dense_root):
    from mmdet3d.registry import DATASETS

    import mmfusion.det3d  # noqa: F401
    cfg = _dense_cfg(dense_root)
    assert cfg.train_dataloader.dataset.ann_file == 'dense_infos_train_all_FOV3000_60.pkl'
    assert cfg.test_dataloader.dataset.ann_file == 'dense_infos_test_clear_FOV3000_25.pkl'
    assert osp.normpath(cfg.test_evaluator.ann_file) == osp.join(
        REPO_ROOT, 'data', 'dense_infos', 'dense_infos_test_clear_FOV3000_25.pkl')
    for key, split in (('train_dataloader', 'train_all_FOV3000_60'),
                       ('test_dataloader', 'test_clear_FOV3000_25')):
        dataset = DATASETS.build(cfg[key].dataset)
        assert len(dataset) == len(SPLITS[split])
        for i, idx in enumerate(SPLITS[split]):
            info = dataset.get_data_info(i)
            assert info['lidar_points']['lidar_path'].endswith(
                osp.join('lidar_hdl64_strongest', f'{idx}.bin'))
            assert info['images']['CAM2']['img_path'].endswith(
                osp.join('cam_stereo_left_lut', f'{idx}.png'))
            # the LiDAR-frame ground truth is the cars the fixture placed (Car = label 0)
            expected = np.array(CARS[idx], dtype=np.float32)
            got = info['ann_info']['gt_bboxes_3d'].tensor.numpy() if 'ann_info' in info else \
                dataset.parse_ann_info(info)['gt_bboxes_3d'].tensor.numpy()
            np.testing.assert_allclose(got[:, :6], expected[:, :6], atol=2e-3)
            yaw_error = (got[:, 6] - expected[:, 6] + np.pi) % (2 * np.pi) - np.pi
            assert np.abs(yaw_error).max() < 2e-2  # lidar2cam is not exactly axis-aligned
        sample = dataset[0]
        assert sample['inputs']['points'].shape[1] == 4  # 5 features stored, 4 used
        assert tuple(sample['inputs']['img'].shape) == (3, 1024, 1920)
        if key == 'train_dataloader':
            assert set(sample['data_samples'].gt_instances_3d.labels_3d.tolist()) == {0}


@pytest.mark.slow
def test_dense_config_loss_and_predict(dense_root):
    """The full DENSE model (ResNet-50 at 1920x1024, 0.05 m voxels) on the converted frames."""
    from mmdet3d.registry import DATASETS, MODELS

    import mmfusion.det3d  # noqa: F401
    cfg = _dense_cfg(dense_root)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    train_set = DATASETS.build(cfg.train_dataloader.dataset)
    batch = model.data_preprocessor(pseudo_collate([train_set[0]]), training=True)
    losses = model.loss(batch['inputs'], batch['data_samples'])
    assert {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_corner'} <= set(losses)
    total = sum(sum(v) if isinstance(v, list) else v for v in losses.values())
    assert torch.isfinite(total) and total > 0
    total.backward()
    model.eval()
    test_set = DATASETS.build(cfg.test_dataloader.dataset)
    with torch.no_grad():
        batch = model.data_preprocessor(pseudo_collate([test_set[0]]), training=False)
        results = model.predict(batch['inputs'], batch['data_samples'])
    pred = results[0].pred_instances_3d
    assert len(pred.bboxes_3d) == len(pred.scores_3d) == len(pred.labels_3d)
    assert torch.isfinite(pred.bboxes_3d.tensor).all()
    assert (pred.labels_3d == 0).all()  # Car only
