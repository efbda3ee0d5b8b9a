"""Multimodal ground-truth sampling: paste database objects into the point cloud AND the image.

Source: SSLFusion's official KITTI recipe (github.com/TLDBN/SSLFsion,
``tools/cfgs/kitti/voxel_rcnn_3class_SSLFusion.yaml``: ``gt_sampling`` with
``AUG_WITH_IMAGE: True``, ``IMG_AUG_TYPE: kitti``, 15 Car / 10 Pedestrian / 10 Cyclist per frame)
and the image branch of its database sampler (``pcdet/datasets/augmentor/database_sampler.py``),
read and not copied. mmdet3d's ``ObjectSample`` / ``DataBaseSampler`` do the LiDAR part (class
quotas, BEV collision checks against the frame's boxes and the ones sampled before, removal of
the frame's points inside sampled boxes); the classes here add the image part.

Shape shorthand: N points, K objects of the frame, S sampled objects, H, W image size in pixels.

What one call adds, for every sampled object (database entries with the image keys written by
:func:`mmfusion.converters.kitti_gt_database_images.add_gt_database_image_crops`):

1. **Camera re-alignment** (official "point refine"): the object was recorded by another frame's
   camera. ``T = inv(lidar2img_frame) @ lidar2img_source`` (4 x 4) maps each of its points to the
   LiDAR point of this frame that projects to the same pixel at the same depth, so the object
   keeps exactly the pixels of its stored crop. The box centre is mapped with ``T`` too, its
   size kept and its yaw turned by the rotation of ``T`` about z (the official code refits the
   box to its mapped corners).
2. **2D overlap check** (official ``IMG_AUG_IOU_THRESH`` 0.5): the object's 2D box (its crop's
   box) must have IoU < ``iou_2d_thr`` with the 2D boxes of the frame's objects (their 3D boxes
   projected and clipped to the image) and with the other sampled objects' boxes; objects that
   fail are dropped (both of an overlapping sampled pair, as officially).
3. **Paste by depth** (official ``by_depth``): the crops of the sampled objects and of the
   frame's own objects (cut from the frame before pasting) are pasted far to near (by the box
   centre's x, the LiDAR forward axis), so nearer objects cover farther ones.
4. **Occlusion of points** (official ``annotation`` mode): a sampled object's point is kept only
   where its own crop is the last one pasted at its pixel; a frame point is kept where its pixel
   is covered by no crop, or lies in a frame object's box and is still showing a frame object.
   Points that project outside the image or behind the camera are kept (the official code clips
   them to the image border instead, which removes or keeps them by the border pixel).

Differences from the official code, besides the ones named above: ground-plane placement is not
supported together with the image paste (``use_ground_plane=True`` is refused); the frame's
objects' 2D boxes are projected from their 3D boxes (official: the 2D annotation boxes, which
mmdet3d's KITTI infos carry only as ``bbox`` of the instances before the ``DontCare`` filter);
the crops are cut at database-build time from the annotation box (official: at sampling time,
around the same box's centre, with the size of the re-projected box, which step 1 makes the
same box up to rounding).
"""
from typing import List

import mmcv
import numpy as np
from mmdet3d.datasets.transforms import ObjectSample
from mmdet3d.datasets.transforms.dbsampler import DataBaseSampler
from mmdet3d.registry import TRANSFORMS
from mmdet3d.structures import LiDARInstance3DBoxes

__all__ = ['MultiModalDataBaseSampler', 'MultiModalObjectSample']

_IMAGE_KEYS = ('img_path', 'bbox', 'lidar2img')


def _iou_2d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, B) IoU of axis-aligned [x1, y1, x2, y2] boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


def project_boxes_2d(boxes: LiDARInstance3DBoxes, lidar2img: np.ndarray,
                     img_shape) -> np.ndarray:
    """(K, 4) int [x1, y1, x2, y2] image boxes of 3D boxes (corners projected, clipped to the
    image, x2/y2 exclusive); a box with a corner behind the camera or no pixel in the image
    gets an empty box (x2 <= x1)."""
    h, w = img_shape[:2]
    if len(boxes) == 0:
        return np.zeros((0, 4), dtype=np.int64)
    corners = boxes.corners.numpy().reshape(-1, 3)
    uvd = np.concatenate([corners, np.ones((len(corners), 1))], 1) @ np.asarray(lidar2img).T
    depth = uvd[:, 2].reshape(-1, 8)
    uv = (uvd[:, :2] / np.maximum(uvd[:, 2:3], 1e-6)).reshape(-1, 8, 2)
    out = np.concatenate([np.floor(uv.min(1)), np.ceil(uv.max(1))], 1)
    out[:, 0::2] = out[:, 0::2].clip(0, w)
    out[:, 1::2] = out[:, 1::2].clip(0, h)
    out[(depth <= 0).any(1)] = 0
    return out.astype(np.int64)


@TRANSFORMS.register_module()
class MultiModalDataBaseSampler(DataBaseSampler):
    """mmdet3d's ``DataBaseSampler`` that returns the sampled objects one by one, with their
    database entries (for the image crop and the source camera).

    Args: as :class:`mmdet3d.datasets.transforms.dbsampler.DataBaseSampler` (``info_path``,
    ``data_root``, ``rate``, ``prepare``, ``sample_groups``, ``classes``, ``points_loader``).

    Raises:
        KeyError: From :meth:`sample_objects`, if a sampled entry lacks the image keys (a
            database built without image crops).
    """

    def sample_objects(self, gt_bboxes: np.ndarray, gt_labels: np.ndarray) -> List[dict]:
        """Sample objects as the stock ``sample_all`` (class quotas minus the frame's objects,
        ``rate``, BEV collision checks against the frame and the earlier samples).

        Args:
            gt_bboxes (np.ndarray): (K, 7) the frame's LiDAR boxes.
            gt_labels (np.ndarray): (K,) their labels.

        Returns:
            list[dict]: One dict per sampled object: ``info`` (its database entry), ``box``
            ((7,) LiDAR box, bottom centre), ``label`` (int), ``points``
            (:class:`~mmdet3d.structures.LiDARPoints`, in the source frame's LiDAR coordinates).
        """
        objects = []
        avoid = gt_bboxes
        for name, quota in zip(self.sample_classes, self.sample_max_nums):
            label = self.cat2label[name]
            num = int(np.round(self.rate * int(quota - np.sum(gt_labels == label))))
            if num <= 0 or not self.db_infos.get(name):  # (the stock code fails on an empty
                continue  # class database, e.g. a class absent from a small training set)
            sampled = self.sample_class_v2(name, num, avoid)
            if not sampled:
                continue
            avoid = np.concatenate([avoid, np.stack([s['box3d_lidar'] for s in sampled])])
            for info in sampled:
                missing = [k for k in _IMAGE_KEYS if k not in info]
                if missing:
                    raise KeyError(f'MultiModalDataBaseSampler: database entry {info["path"]} '
                                   f'has no {missing}: rebuild the database with its image '
                                   'crops (tools/create_data.py kitti)')
                path = info['path']
                results = dict(lidar_points=dict(
                    lidar_path=f'{self.data_root}/{path}' if self.data_root else path))
                points = self.points_loader(results)['points']
                points.translate(info['box3d_lidar'][:3])
                objects.append(dict(info=info, box=np.array(info['box3d_lidar'], np.float32),
                                    label=label, points=points))
        return objects


@TRANSFORMS.register_module()
class MultiModalObjectSample(ObjectSample):
    """``ObjectSample`` pasting each sampled object's points and image crop (see the module
    docstring for the steps and their sources).

    Args:
        db_sampler (dict): A :class:`MultiModalDataBaseSampler` config.
        iou_2d_thr (float): Largest 2D IoU a sampled object may have with the frame's objects
            and the other samples (official 0.5).
        use_ground_plane (bool): Must be False (not supported with the image paste).

    Required keys: ``points``, ``img`` ((H, W, 3) uint8), ``lidar2img`` ((4, 4)),
    ``gt_bboxes_3d``, ``gt_labels_3d``. Modified keys: ``points``, ``img``, ``gt_bboxes_3d``,
    ``gt_labels_3d``, and ``gt_bboxes`` / ``gt_bboxes_labels`` when present (the sampled
    objects' crop boxes and labels appended).

    Raises:
        ValueError: If ``use_ground_plane`` is True or ``db_sampler`` is not a
            :class:`MultiModalDataBaseSampler`; from :meth:`transform`, if ``img`` or
            ``lidar2img`` is missing.
    """

    def __init__(self, db_sampler: dict, iou_2d_thr: float = 0.5,
                 use_ground_plane: bool = False) -> None:
        if use_ground_plane:
            raise ValueError('MultiModalObjectSample: use_ground_plane is not supported with '
                             'the image paste')
        super().__init__(db_sampler, sample_2d=False, use_ground_plane=False)
        if not isinstance(self.db_sampler, MultiModalDataBaseSampler):
            raise ValueError('MultiModalObjectSample needs db_sampler of type '
                             f'MultiModalDataBaseSampler, got {type(self.db_sampler).__name__}')
        self.iou_2d_thr = iou_2d_thr

    @staticmethod
    def _realign(obj: dict, lidar2img: np.ndarray) -> None:
        """Move the object's points and box to this frame's camera (step 1), in place."""
        transform = np.linalg.inv(lidar2img) @ np.asarray(obj['info']['lidar2img'])
        xyz = obj['points'].coord.numpy()
        moved = np.concatenate([xyz, np.ones((len(xyz), 1))], 1) @ transform.T
        obj['points'].tensor[:, :3] = obj['points'].tensor.new_tensor(moved[:, :3])
        box = obj['box'].copy()
        centre = np.array([box[0], box[1], box[2] + box[5] / 2, 1.0]) @ transform.T
        box[:3] = centre[:3]
        box[2] -= box[5] / 2
        box[6] += np.arctan2(transform[1, 0], transform[0, 0])
        obj['box'] = box.astype(np.float32)

    def transform(self, input_dict: dict) -> dict:
        """Sample, re-align, filter, paste and cull occluded points (module docstring)."""
        if self.disabled:
            return input_dict
        for key in ('img', 'lidar2img'):
            if input_dict.get(key) is None:
                raise ValueError(f'MultiModalObjectSample needs {key!r}: load the image '
                                 '(LoadImageFromFile) of a camera-modality dataset first')
        img = input_dict['img']
        lidar2img = np.asarray(input_dict['lidar2img'], dtype=np.float64)
        gt_bboxes_3d, gt_labels_3d = input_dict['gt_bboxes_3d'], input_dict['gt_labels_3d']
        objects = self.db_sampler.sample_objects(gt_bboxes_3d.numpy(), gt_labels_3d)
        for obj in objects:
            self._realign(obj, lidar2img)

        # step 2: 2D overlap check against the frame's objects and among the samples
        frame_boxes_2d = project_boxes_2d(gt_bboxes_3d, lidar2img, img.shape)
        sampled_2d = np.array([o['info']['bbox'] for o in objects], dtype=np.int64).reshape(-1, 4)
        sampled_2d[:, 0::2] = sampled_2d[:, 0::2].clip(0, img.shape[1])  # source images may be
        sampled_2d[:, 1::2] = sampled_2d[:, 1::2].clip(0, img.shape[0])  # larger than this one
        if len(objects):
            among = _iou_2d(sampled_2d, sampled_2d)
            np.fill_diagonal(among, 0)
            frame = _iou_2d(sampled_2d, frame_boxes_2d)
            keep = (among.max(1) < self.iou_2d_thr) & \
                ((frame.max(1) if frame.size else np.zeros(len(objects))) < self.iou_2d_thr)
            objects = [o for o, k in zip(objects, keep) if k]
            sampled_2d = sampled_2d[keep]
        if not objects:
            input_dict['gt_labels_3d'] = gt_labels_3d.astype(np.int64)
            return input_dict

        k = len(gt_bboxes_3d)
        new_boxes = np.stack([o['box'] for o in objects])
        points = self.remove_points_in_boxes(input_dict['points'], new_boxes)
        owners = np.concatenate([np.full(len(o['points']), k + i) for i, o in enumerate(objects)]
                                + [np.full(len(points), -1)])
        points = points.cat([o['points'] for o in objects] + [points])

        # step 3: paste by depth, far to near
        crops = [img[y1:y2, x1:x2].copy() for x1, y1, x2, y2 in frame_boxes_2d]
        crops += [mmcv.imread(f'{self.db_sampler.data_root}/{o["info"]["img_path"]}')
                  for o in objects]
        boxes_2d = np.concatenate([frame_boxes_2d, sampled_2d])
        depth = np.concatenate([gt_bboxes_3d.numpy()[:, 0], new_boxes[:, 0]])
        owner_map = np.full(img.shape[:2], -1, dtype=np.int64)
        frame_fg = np.zeros(img.shape[:2], dtype=bool)
        img = img.copy()
        for i in np.argsort(-depth, kind='stable'):
            x1, y1, x2, y2 = boxes_2d[i]
            if x2 <= x1 or y2 <= y1:
                continue
            img[y1:y2, x1:x2] = crops[i][:y2 - y1, :x2 - x1]
            owner_map[y1:y2, x1:x2] = i
            if i < k:
                frame_fg[y1:y2, x1:x2] = True

        # step 4: points hidden behind a pasted crop are removed
        xyz = points.coord.numpy()
        uvd = np.concatenate([xyz, np.ones((len(xyz), 1))], 1) @ lidar2img.T
        u = np.floor(uvd[:, 0] / np.maximum(uvd[:, 2], 1e-6)).astype(np.int64)
        v = np.floor(uvd[:, 1] / np.maximum(uvd[:, 2], 1e-6)).astype(np.int64)
        visible = (uvd[:, 2] > 0) & (u >= 0) & (u < img.shape[1]) & (v >= 0) & \
            (v < img.shape[0])
        owner = np.full(len(xyz), -1)
        owner[visible] = owner_map[v[visible], u[visible]]
        fg = np.zeros(len(xyz), dtype=bool)
        fg[visible] = frame_fg[v[visible], u[visible]]
        own = (owners >= k) & (owner == owners)
        frame_point = (owners < 0) & ((fg & (owner >= 0) & (owner < k)) | (~fg & (owner < 0)))
        points = points[~visible | own | frame_point]

        labels = np.array([o['label'] for o in objects], dtype=np.int64)
        input_dict['points'] = points
        input_dict['img'] = img
        input_dict['gt_bboxes_3d'] = gt_bboxes_3d.new_box(
            np.concatenate([gt_bboxes_3d.numpy(), new_boxes]))
        input_dict['gt_labels_3d'] = np.concatenate([gt_labels_3d, labels]).astype(np.int64)
        if input_dict.get('gt_bboxes') is not None:
            input_dict['gt_bboxes'] = np.concatenate(
                [input_dict['gt_bboxes'], sampled_2d.astype(np.float32)]).astype(np.float32)
            input_dict['gt_bboxes_labels'] = np.concatenate(
                [input_dict['gt_bboxes_labels'], labels]).astype(np.int64)
        return input_dict

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(db_sampler={self.db_sampler}, '
                f'iou_2d_thr={self.iou_2d_thr})')
