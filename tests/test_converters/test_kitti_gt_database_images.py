"""Image crops of the KITTI GT database (multimodal GT sampling), on the bundled KITTI sample
converted by ``create_kitti_infos`` (the session fixture ``kitti_infos_root``)."""
import os
import os.path as osp
import pickle

import mmcv
import numpy as np

from tests.utils import REPO_ROOT

KITTI_ROOT = osp.join(REPO_ROOT, 'tests', 'data', 'kitti')


def test_every_database_object_has_its_crop(kitti_infos_root):
    with open(osp.join(kitti_infos_root, 'kitti_dbinfos_train.pkl'), 'rb') as f:
        database = pickle.load(f)
    n = 0
    for entries in database.values():
        for entry in entries:
            x1, y1, x2, y2 = entry['bbox']
            crop = mmcv.imread(osp.join(kitti_infos_root, entry['img_path']))
            source = mmcv.imread(osp.join(KITTI_ROOT, 'training', 'image_2',
                                          f'{entry["image_idx"]:06d}.png'))
            np.testing.assert_array_equal(crop, source[y1:y2, x1:x2])  # PNG: lossless
            assert entry['img_path'] == osp.join(
                'kitti_gt_database_img',
                osp.basename(entry['path']).replace('.bin', '.png'))
            assert entry['lidar2img'].shape == (4, 4)
            # the object's points project into its crop (a margin for points on the box edge)
            points = np.fromfile(osp.join(kitti_infos_root, entry['path']),
                                 dtype=np.float32).reshape(-1, 4)[:, :3]
            points = points + entry['box3d_lidar'][:3]  # stored relative to the box
            uvd = np.concatenate([points, np.ones((len(points), 1))], 1) @ entry['lidar2img'].T
            uv = uvd[:, :2] / uvd[:, 2:3]
            inside = (uv[:, 0] >= x1 - 3) & (uv[:, 0] <= x2 + 3) & \
                (uv[:, 1] >= y1 - 3) & (uv[:, 1] <= y2 + 3)
            assert inside.mean() > 0.9, entry['path']
            n += 1
    assert n > 0
    assert len(os.listdir(osp.join(kitti_infos_root, 'kitti_gt_database_img'))) == n
