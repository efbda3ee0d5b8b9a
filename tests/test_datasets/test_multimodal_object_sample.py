"""Multimodal GT sampling on the real KITTI sample: the database (points + image crops) is built
by ``create_kitti_infos`` from the train frames (000000-000003); objects are pasted into the val
frames 000004/000005 through the stock KITTI dataset and loading transforms.

Checked: every pasted object's kept points project onto pixels that now hold its crop (so SAM
samples the pasted object's pixels), the crop pixels are the database crop's, no point of a
pasted object survives where a nearer crop covers it, the frame's points under a pasted crop
outside the frame's objects are removed, the boxes pass the BEV collision check, and
``lidar2img`` is untouched.
"""
import copy
import os.path as osp

import mmcv
import numpy as np
import pytest

import mmfusion.det3d  # noqa: F401  (registers the transforms, as custom_imports does)

pytestmark = pytest.mark.default_scope('mmdet3d')

CLASSES = ['Pedestrian', 'Cyclist', 'Car']


def _sampler_cfg(root, **kwargs):
    cfg = dict(
        type='MultiModalDataBaseSampler', data_root=root,
        info_path=osp.join(root, 'kitti_dbinfos_train.pkl'), rate=1.0,
        prepare=dict(filter_by_difficulty=[-1],
                     filter_by_min_points=dict(Car=5, Pedestrian=5, Cyclist=5)),
        classes=CLASSES, sample_groups=dict(Car=15, Pedestrian=10, Cyclist=10),
        points_loader=dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4,
                           use_dim=4))
    cfg.update(kwargs)
    return cfg


def _frames(root):
    from mmdet3d.registry import DATASETS
    dataset = DATASETS.build(dict(
        type='KittiDataset', data_root=root, ann_file='kitti_infos_val.pkl',
        data_prefix=dict(pts='training/velodyne_reduced', img='training/image_2'),
        modality=dict(use_lidar=True, use_camera=True), metainfo=dict(classes=CLASSES),
        filter_empty_gt=False,
        pipeline=[dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4, use_dim=4),
                  dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True)]))
    return [dataset[i] for i in range(len(dataset))]


def _project(xyz, lidar2img):
    uvd = np.concatenate([xyz, np.ones((len(xyz), 1))], 1) @ np.asarray(lidar2img).T
    return np.floor(uvd[:, :2] / uvd[:, 2:3]).astype(np.int64), uvd[:, 2]


def _recording(transform):
    """Make the transform's sampler record the objects it returns (before the 2D checks)."""
    sampler, record = transform.db_sampler, []
    original = sampler.sample_objects

    def sample_objects(*args):
        objects = original(*args)
        record.extend(objects)
        return objects

    sampler.sample_objects = sample_objects
    return record


def test_pasted_points_project_onto_pasted_pixels(kitti_infos_root):
    from mmdet3d.datasets.transforms.data_augment_utils import box_collision_test
    from mmdet3d.registry import TRANSFORMS
    from mmdet3d.structures.ops import box_np_ops
    transform = TRANSFORMS.build(dict(type='MultiModalObjectSample',
                                      db_sampler=_sampler_cfg(kitti_infos_root)))
    record = _recording(transform)
    n_pasted = n_checked = realigned = 0
    for seed, frame in enumerate(_frames(kitti_infos_root)):
        np.random.seed(seed)
        record.clear()
        before = copy.deepcopy(frame)
        k = len(before['gt_bboxes_3d'])
        out = transform(frame)
        assert np.array_equal(out['lidar2img'], before['lidar2img'])
        boxes = out['gt_bboxes_3d'].numpy()
        new = boxes[k:]
        n_pasted += len(new)
        if not len(new):
            continue
        # BEV collision check (stock): no sampled box overlaps any other box in BEV
        bev = box_np_ops.center_to_corner_box2d(boxes[:, :2], boxes[:, 3:5], boxes[:, 6])
        collision = box_collision_test(bev, bev)
        np.fill_diagonal(collision, False)
        assert not collision[k:].any()
        xyz = out['points'].coord.numpy()
        inside = box_np_ops.points_in_rbbox(xyz, new)  # frame points there were removed
        uv, depth = _project(xyz, out['lidar2img'])
        for i, box in enumerate(new):
            info = [o['info'] for o in record if np.allclose(o['box'], box)][0]
            crop = mmcv.imread(osp.join(kitti_infos_root, info['img_path']))
            x1, y1 = info['bbox'][:2]
            pts = inside[:, i]
            if not pts.any():  # hidden behind a nearer pasted crop (e.g. 2_Car_1 behind 3_Car_0
                continue  # in this sample: IoU 0.13 passes the 0.5 check, as officially)
            assert (depth[pts] > 0).all()
            u, v = uv[pts, 0], uv[pts, 1]
            # each kept point of the object sits on a pixel of its own crop
            assert ((u >= x1) & (u < x1 + crop.shape[1]) & (v >= y1) &
                    (v < y1 + crop.shape[0])).all()
            np.testing.assert_array_equal(out['img'][v, u], crop[v - y1, u - x1])
            n_checked += int(pts.sum())
            # an object recorded by another camera calibration (frame 000000's) was re-aligned
            realigned += not np.allclose(info['lidar2img'], out['lidar2img'])
        # the 2D boxes of the pasted objects were appended
        assert len(out['gt_labels_3d']) == len(boxes)
    assert n_pasted > 0 and n_checked > 0 and realigned > 0


def test_crop_pixels_and_occlusion(kitti_infos_root):
    """With one object pasted into a frame: its pixels are exactly the database crop, and the
    frame's points that now project onto the crop (outside the frame's objects) are gone."""
    from mmdet3d.registry import TRANSFORMS
    from mmdet3d.structures.ops import box_np_ops
    transform = TRANSFORMS.build(dict(type='MultiModalObjectSample', db_sampler=_sampler_cfg(
        kitti_infos_root, sample_groups=dict(Car=0, Pedestrian=0, Cyclist=0))))
    sampler = transform.db_sampler
    objects = _recording(transform)
    frames = _frames(kitti_infos_root)
    for frame in frames:
        k = len(frame['gt_bboxes_3d'])
        np.random.seed(0)
        sampler.sample_classes, sampler.sample_max_nums = ['Car'], [k + 1]
        before = copy.deepcopy(frame)
        objects.clear()
        out = transform(frame)
        if len(out['gt_bboxes_3d']) == k:
            continue  # nothing survived the checks in this frame
        info = [o for o in objects if any(np.allclose(o['box'], b)
                                          for b in out['gt_bboxes_3d'].numpy()[k:])][0]['info']
        crop = mmcv.imread(osp.join(kitti_infos_root, info['img_path']))
        x1, y1, x2, y2 = info['bbox']
        h, w = out['img'].shape[:2]
        x2, y2 = min(x2, w), min(y2, h)
        region = out['img'][y1:y2, x1:x2]
        # nearer frame objects may cover part of it; where nothing nearer was pasted, the
        # region is the crop
        assert np.mean(np.all(region == crop[:y2 - y1, :x2 - x1], axis=-1)) > 0.5
        # frame points under the crop, outside the frame's boxes, were removed
        xyz = before['points'].coord.numpy()
        uv, depth = _project(xyz, before['lidar2img'])
        under = (depth > 0) & (uv[:, 0] >= x1) & (uv[:, 0] < x2) & (uv[:, 1] >= y1) & \
            (uv[:, 1] < y2)
        in_frame_boxes = box_np_ops.points_in_rbbox(
            xyz, before['gt_bboxes_3d'].numpy()).any(1) if k else np.zeros(len(xyz), bool)
        gone = xyz[under & ~in_frame_boxes]
        kept = out['points'].coord.numpy()
        kept_set = {tuple(p) for p in np.round(kept, 5)}
        assert len(gone) > 0
        assert not any(tuple(p) in kept_set for p in np.round(gone, 5))
        return
    pytest.fail('no frame received a pasted object')


def test_errors(kitti_infos_root):
    from mmdet3d.registry import TRANSFORMS
    with pytest.raises(ValueError, match='use_ground_plane'):
        TRANSFORMS.build(dict(type='MultiModalObjectSample', use_ground_plane=True,
                              db_sampler=_sampler_cfg(kitti_infos_root)))
    stock = dict(_sampler_cfg(kitti_infos_root), type='DataBaseSampler')
    with pytest.raises(ValueError, match='MultiModalDataBaseSampler'):
        TRANSFORMS.build(dict(type='MultiModalObjectSample', db_sampler=stock))
    transform = TRANSFORMS.build(dict(type='MultiModalObjectSample',
                                      db_sampler=_sampler_cfg(kitti_infos_root)))
    frame = _frames(kitti_infos_root)[0]
    frame.pop('img')
    with pytest.raises(ValueError, match="'img'"):
        transform(frame)
