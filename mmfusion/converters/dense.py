"""Convert DENSE / SeeingThroughFog (LiDAR + camera) into mmdet3d's KITTI-style v2 infos.

Dataset: M. Bijelic, T. Gruber, F. Mannan, F. Kraus, W. Ritter, K. Dietmayer, F. Heide, "Seeing
Through Fog Without Seeing Fog: Deep Multimodal Sensor Fusion in Unseen Adverse Weather", CVPR
2020. https://github.com/princeton-computational-imaging/SeeingThroughFog . Its terms of use
forbid redistributing the frames (so no sample ships with this repository); cite the paper.

Official layout read (``root_path`` is the extracted dataset)::

    dense/
        cam_stereo_left_lut/<id>.png               left stereo camera, 1920x1024
        lidar_hdl64_strongest/<id>.bin             float32 x5: x, y, z, intensity, ring
        gt_labels/cam_left_labels_TMP/<id>.txt     one object per line (see below)
        splits/<split>.txt                         lines like ``2018-02-06_14-25-51,00400``
        calib/calib_cam_stereo_left.json           see *Calibration* (``calib_dir``)
        calib/calib_tf_tree_full.json

``<id>`` is ``YYYY-MM-DD_HH-MM-SS_NNNNN``: a split line with its comma replaced by ``_``. Every
``splits/*.txt`` is a split named by its file stem (``train_clear``, ``val_clear``,
``test_dense_fog_day``, ...); blank lines are ignored and a repeated id is kept once.

Labels: KITTI's 15 fields (type truncated occluded alpha bbox[4] h w l x y z rotation_y, in
the ``cam_stereo_left_optical`` frame, defined as in KITTI according to the official reader
``tools/DatasetViewer/lib/read.py``), then DENSE's own fields (rotx roty rotz score qx qy qz qw
visibleRGB visibleGated visibleLidar visibleRadar), which are not used here. At least the 15
KITTI fields are required per line.

Class mapping (the usual 3-class setting of DENSE detectors)::

    PassengerCar -> Car (label 2), Pedestrian -> Pedestrian (0), RidableVehicle -> Cyclist (1)
    LargeVehicle, Vehicle, Obstacle, DontCare -> kept as instances with label -1 (ignored,
    like KITTI's DontCare lines in mmdet3d's infos)

Any other class name is an error. ``metainfo['categories']`` is mmdet3d's KITTI one,
``{'Pedestrian': 0, 'Cyclist': 1, 'Car': 2}``, so KITTI configs and ``KittiDataset`` apply.

Calibration: DENSE has one calibration for the whole dataset, shipped in the official tools
repository (``tools/DatasetViewer/calibs/``), not with the frames: copy those json files into
``<root>/calib`` or pass ``calib_dir``. Two files are read:

- ``calib_cam_stereo_left.json`` (a ROS ``CameraInfo``): ``P`` (12 numbers, the 3x4 rectified
  projection matrix) becomes ``cam2img`` (padded to 4x4). As in the official
  ``load_calib_data``, the rectification ``R`` is taken as identity (``P`` already includes it).
- ``calib_tf_tree_full.json`` (a list of ROS ``TransformStamped``: ``header.frame_id`` = parent,
  ``child_frame_id``, ``transform.translation{x,y,z}`` and ``transform.rotation{x,y,z,w}``
  mapping child coordinates into the parent frame). Both ``lidar_hdl64_s3_roof`` (the HDL-64
  scans) and ``cam_stereo_left_optical`` are chained up to their common root frame (both hang
  off ``body`` in the official file); ``lidar2cam = inv(T_root<-cam) @ T_root<-lidar``, the same
  transform the official ``load_calib_data`` and ``transform_dense2kitti_calib.py`` compute
  (their quaternions are normalised, as pyquaternion does).

``lidar2img = cam2img @ lidar2cam``.

Output (``out_dir`` is a ``data_root``, outside the dataset; use
``data_prefix=dict(pts='lidar_hdl64_strongest', img='cam_stereo_left_lut')`` and
``LoadPointsFromFile(coord_type='LIDAR', load_dim=5, use_dim=4)`` (or ``use_dim=5`` to keep the
ring)::

    out_dir/
        cam_stereo_left_lut -> <root>/cam_stereo_left_lut       absolute symlinks
        lidar_hdl64_strongest -> <root>/lidar_hdl64_strongest
        gt_labels -> <root>/gt_labels
        splits -> <root>/splits
        {extra_tag}_infos_{split}.pkl                           mmdet3d v2 infos
        conversion_report.json                                  objects per split and class,
                                                                ignored classes, LiDAR points
                                                                per box

Each ``data_list`` entry: ``sample_idx`` (the id string), ``lidar_points`` (``lidar_path`` =
``<id>.bin``, ``num_pts_feats`` = 5), ``images.CAM2`` (``img_path`` = ``<id>.png``, height,
width, cam2img, lidar2cam, lidar2img), ``instances`` (``bbox``, ``bbox_label``, ``bbox_3d`` =
camera-frame ``[x, y, z, l, h, w, ry]``, ``bbox_label_3d``, ``truncated``, ``occluded``,
``alpha``, ``score``, ``num_lidar_pts`` = -1 (not computed), ``difficulty`` by KITTI's rule, -1
if none applies). Nothing is written into the dataset; outputs are staged in
``{out_dir}/.tmp-dense-XXXXXXXX`` and moved into place only when all are built.
"""
import glob
import json
import os
import os.path as osp
import re

import numpy as np

from ._io import (REPORT_NAME, ConversionReport, DatasetFormatError, check_output_outside,
                  check_splits_disjoint, commit_staged, dump_json, dump_pickle, image_size, log,
                  open_text, staging_dir)

__all__ = ['create_dense_infos', 'load_dense_calib', 'CLASS_MAPPING']

IMAGE_DIR = 'cam_stereo_left_lut'
LIDAR_DIR = 'lidar_hdl64_strongest'
LABEL_DIR = osp.join('gt_labels', 'cam_left_labels_TMP')
CAM_CALIB = 'calib_cam_stereo_left.json'
TF_TREE = 'calib_tf_tree_full.json'
LIDAR_FRAME = 'lidar_hdl64_s3_roof'
CAM_FRAME = 'cam_stereo_left_optical'

CATEGORIES = {'Pedestrian': 0, 'Cyclist': 1, 'Car': 2}  # mmdet3d's KITTI metainfo
CLASS_MAPPING = {
    'PassengerCar': 'Car',
    'Pedestrian': 'Pedestrian',
    'RidableVehicle': 'Cyclist',
    'LargeVehicle': None,
    'Vehicle': None,
    'Obstacle': None,
    'DontCare': None,
}
_POINT_BYTES = 20  # float32 x, y, z, intensity, ring
_NUM_FEATS = 5
_LABEL_FIELDS = 15
_FIELD_NAMES = ('truncated', 'occluded', 'alpha', 'bbox x1', 'bbox y1', 'bbox x2', 'bbox y2',
                'h', 'w', 'l', 'x', 'y', 'z', 'rotation_y')
_SPLIT_LINE = re.compile(r'^(\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}),(\d{5})$')
# KITTI difficulty: (min bbox height px, max occlusion level, max truncation) per level.
_DIFFICULTY = ((40, 0, 0.15), (25, 1, 0.30), (25, 2, 0.50))


# ------------------------------------------------------------------------------------------
# calibration


def _load_json(path):
    if not osp.isfile(path):
        raise DatasetFormatError(path, 'missing calibration file (copy it from the official '
                                 'SeeingThroughFog repository, tools/DatasetViewer/calibs/)')
    try:
        with open_text(path) as f:
            return json.load(f)
    except ValueError as e:
        raise DatasetFormatError(path, f'not valid json ({e})') from None


def _transform_matrix(item, path):
    """4x4 child->parent matrix of one ROS TransformStamped dict."""
    try:
        t = item['transform']['translation']
        r = item['transform']['rotation']
        x, y, z, w = (float(r[k]) for k in 'xyzw')
        trans = [float(t[k]) for k in 'xyz']
    except (KeyError, TypeError, ValueError):
        raise DatasetFormatError(
            path, f'transform to {item.get("child_frame_id")!r} lacks numeric '
            'transform.translation{x,y,z} / transform.rotation{x,y,z,w}') from None
    norm = np.sqrt(x * x + y * y + z * z + w * w)
    if not norm > 0:
        raise DatasetFormatError(path, f'zero quaternion for {item.get("child_frame_id")!r}')
    x, y, z, w = x / norm, y / norm, z / norm, w / norm
    mat = np.eye(4)
    mat[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                   [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                   [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    mat[:3, 3] = trans
    return mat


def _chain_to_root(tree, frame, path):
    """{ancestor: 4x4 matrix mapping ``frame`` coordinates into that ancestor}."""
    chain = {frame: np.eye(4)}
    current, mat = frame, np.eye(4)
    while current in tree:
        parent, parent_from_child = tree[current]
        if parent in chain:
            raise DatasetFormatError(path, f'cycle in the transform tree at {parent!r}')
        mat = parent_from_child @ mat
        chain[parent] = mat
        current = parent
    return chain


def load_dense_calib(calib_dir):
    """Read DENSE's official calibration (see the module docstring).

    Args:
        calib_dir (str): Folder holding ``calib_cam_stereo_left.json`` and
            ``calib_tf_tree_full.json``.

    Returns:
        dict: ``cam2img`` (4x4), ``lidar2cam`` (4x4), ``lidar2img`` (4x4), as nested lists.

    Raises:
        DatasetFormatError: Naming the file, if one is missing, is not json, has no 12-number
            ``P``, or the transform tree does not connect ``lidar_hdl64_s3_roof`` and
            ``cam_stereo_left_optical``.
    """
    cam_path = osp.join(calib_dir, CAM_CALIB)
    cam = _load_json(cam_path)
    try:
        proj = np.asarray(cam['P'], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise DatasetFormatError(cam_path, 'needs "P": 12 numbers (3x4 projection)') from None
    if proj.shape != (12, ):
        raise DatasetFormatError(cam_path, f'"P" has shape {proj.shape}, expected 12 numbers')
    cam2img = np.eye(4)
    cam2img[:3, :4] = proj.reshape(3, 4)

    tf_path = osp.join(calib_dir, TF_TREE)
    items = _load_json(tf_path)
    if not isinstance(items, list):
        raise DatasetFormatError(tf_path, 'expected a list of transforms')
    tree = {}
    for item in items:
        try:
            child, parent = item['child_frame_id'], item['header']['frame_id']
        except (KeyError, TypeError):
            raise DatasetFormatError(tf_path, 'a transform lacks child_frame_id or '
                                     'header.frame_id') from None
        if child in (LIDAR_FRAME, CAM_FRAME) or child not in tree:
            tree[child] = (parent, _transform_matrix(item, tf_path))
    lidar_chain = _chain_to_root(tree, LIDAR_FRAME, tf_path)
    cam_chain = _chain_to_root(tree, CAM_FRAME, tf_path)
    common = [f for f in cam_chain if f in lidar_chain]
    if not common:
        raise DatasetFormatError(tf_path, f'no transform chain connects {LIDAR_FRAME} and '
                                 f'{CAM_FRAME}')
    root = common[0]
    lidar2cam = np.linalg.inv(cam_chain[root]) @ lidar_chain[root]
    lidar2img = cam2img @ lidar2cam
    checked = ((cam_path, '"P"', cam2img), (tf_path, 'the lidar-to-camera chain', lidar2cam))
    for path, what, mat in checked:
        if not np.isfinite(mat).all():
            raise DatasetFormatError(path, f'{what} has a value that is not finite')
    return dict(cam2img=cam2img.tolist(), lidar2cam=lidar2cam.tolist(),
                lidar2img=lidar2img.tolist())


# ------------------------------------------------------------------------------------------
# validation and parsing


def _read_split(path):
    ids = []
    seen = set()
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            text = line.strip()
            if not text:
                continue
            match = _SPLIT_LINE.match(text)
            if not match:
                raise DatasetFormatError(
                    path, f'line {lineno}: {text!r} is not "YYYY-MM-DD_HH-MM-SS,NNNNN"')
            idx = f'{match.group(1)}_{match.group(2)}'
            if idx not in seen:
                seen.add(idx)
                ids.append(idx)
    return ids


def _parse_label(path):
    """Objects of one label file as dicts; raises DatasetFormatError on malformed lines."""
    objects = []
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < _LABEL_FIELDS:
                raise DatasetFormatError(
                    path, f'line {lineno} has {len(fields)} fields, expected at least '
                    f'{_LABEL_FIELDS} (type truncated occluded alpha bbox[4] h w l x y z '
                    'rotation_y, then the DENSE fields)')
            name = fields[0]
            if name not in CLASS_MAPPING:
                raise DatasetFormatError(
                    path, f'line {lineno}: unknown class {name!r} (known: '
                    f'{", ".join(CLASS_MAPPING)})')
            try:
                vals = [float(v) for v in fields[1:_LABEL_FIELDS]]
            except ValueError:
                raise DatasetFormatError(
                    path, f'line {lineno}: non-numeric value among the first '
                    f'{_LABEL_FIELDS} fields') from None
            score = 0.0
            if len(fields) > 18:  # DENSE's score is field 19 (after rotx roty rotz)
                try:
                    score = float(fields[18])
                except ValueError:
                    raise DatasetFormatError(path, f'line {lineno}: non-numeric score '
                                             f'{fields[18]!r}') from None
            _check_label_values(name, vals, score, path, lineno)
            objects.append(dict(name=name, truncated=vals[0], occluded=int(round(vals[1])),
                                alpha=vals[2], bbox=vals[3:7], hwl=vals[7:10],
                                loc=vals[10:13], ry=vals[13], score=score))
    return objects


def _check_label_values(name, vals, score, path, lineno):
    """Refuse non-finite numbers and, except on DontCare lines, KITTI's out-of-range fields."""
    where = f'line {lineno}'
    for i, value in enumerate(list(vals) + [score]):
        if not np.isfinite(value):
            field = _FIELD_NAMES[i] if i < len(_FIELD_NAMES) else 'score'
            raise DatasetFormatError(path, f'{where}: {field} is {value} (not finite)')
    if name == 'DontCare':
        return
    truncated, occluded = vals[0], vals[1]
    if not 0 <= truncated <= 1:
        raise DatasetFormatError(path, f'{where}: truncated {truncated} is outside [0, 1]')
    if occluded not in (0, 1, 2, 3):
        raise DatasetFormatError(path, f'{where}: occluded {occluded} is not 0, 1, 2 or 3')
    if min(vals[7:10]) <= 0:
        raise DatasetFormatError(path, f'{where}: dimensions h w l {vals[7:10]} must be > 0')
    x1, y1, x2, y2 = vals[3:7]
    if x2 < x1 or y2 < y1:
        raise DatasetFormatError(path, f'{where}: 2D box {vals[3:7]} has x2 < x1 or y2 < y1')


def _check_split_groups(split_ids, split_dir):
    """Refuse an empty split and a frame in splits of two groups (train / val / test)."""
    groups, where = {}, {}
    for split, ids in split_ids.items():
        group = split.split('_')[0]
        groups.setdefault(group, set()).update(ids)
        where.setdefault(group, osp.join(split_dir, f'{split}.txt'))
        if not ids:
            raise DatasetFormatError(osp.join(split_dir, f'{split}.txt'),
                                     f'split {split!r} lists no frames')
    check_splits_disjoint({g: sorted(ids) for g, ids in groups.items()}, where)


def points_in_boxes(points, objects, lidar2cam):
    """Number of LiDAR points inside each object's 3D box.

    Args:
        points (np.ndarray): ``(N, >=3)`` LiDAR points, x y z in metres first.
        objects (list[dict]): Parsed label lines: ``loc`` (bottom centre, camera frame),
            ``hwl`` (metres), ``ry`` (rotation about the camera y axis, KITTI convention).
        lidar2cam (array-like): 4x4 LiDAR-to-camera transform.

    Returns:
        list[int]: One count per object (boundaries included).
    """
    lidar2cam = np.asarray(lidar2cam, dtype=np.float64)
    cam = points[:, :3].astype(np.float64) @ lidar2cam[:3, :3].T + lidar2cam[:3, 3]
    counts = []
    for obj in objects:
        h, w, length = obj['hwl']
        d = cam - np.asarray(obj['loc'])
        c, s = np.cos(obj['ry']), np.sin(obj['ry'])
        along, across = c * d[:, 0] - s * d[:, 2], s * d[:, 0] + c * d[:, 2]
        inside = ((np.abs(along) <= length / 2) & (np.abs(across) <= w / 2)
                  & (d[:, 1] <= 0) & (d[:, 1] >= -h))
        counts.append(int(inside.sum()))
    return counts


def _dense_report(root, split_ids, frames, calib):
    """Counts per split and class (classes kept with label -1 listed as dropped), and LiDAR
    points per box over the distinct frames."""
    report = ConversionReport('DENSE')
    for split, ids in split_ids.items():
        report.add_frames(split, len(ids))
        for idx in ids:
            for obj in frames[idx]['objects']:
                mapped = CLASS_MAPPING[obj['name']]
                if mapped is None:
                    report.drop(split, obj['name'], 'kept with label -1 (ignored in training '
                                'and evaluation)')
                else:
                    report.add_object(split, mapped)
    for idx, frame in frames.items():
        points = np.fromfile(osp.join(root, LIDAR_DIR, f'{idx}.bin'),
                             dtype=np.float32).reshape(-1, _NUM_FEATS)
        if not np.isfinite(points).all():
            raise DatasetFormatError(osp.join(root, LIDAR_DIR, f'{idx}.bin'),
                                     'a point has a NaN or inf value')
        counts = points_in_boxes(points, frame['objects'], calib['lidar2cam'])
        for obj, n in zip(frame['objects'], counts):
            if CLASS_MAPPING[obj['name']] is not None:
                report.add_points(CLASS_MAPPING[obj['name']], n)
    report.notes.append('points_per_box: LiDAR points inside each Car/Pedestrian/Cyclist box of '
                        'the distinct frames (the infos keep num_lidar_pts = -1)')
    return report


def _difficulty(obj):
    height = obj['bbox'][3] - obj['bbox'][1]
    level = -1
    for i in reversed(range(len(_DIFFICULTY))):
        min_h, max_occ, max_trunc = _DIFFICULTY[i]
        if height > min_h and obj['occluded'] <= max_occ and obj['truncated'] <= max_trunc:
            level = i
    return level


def _check_frame(root, idx, split_file):
    paths = {
        'image': osp.join(root, IMAGE_DIR, f'{idx}.png'),
        'lidar': osp.join(root, LIDAR_DIR, f'{idx}.bin'),
        'label': osp.join(root, LABEL_DIR, f'{idx}.txt'),
    }
    for kind, path in paths.items():
        if not osp.isfile(path):
            raise DatasetFormatError(path, f'missing: frame {idx} is listed in {split_file} '
                                     f'but has no {kind} file')
    size = osp.getsize(paths['lidar'])
    if size == 0 or size % _POINT_BYTES:
        raise DatasetFormatError(
            paths['lidar'], f'truncated or empty point cloud: {size} bytes is not a positive '
            f'multiple of {_POINT_BYTES} (x, y, z, intensity, ring as float32)')
    width, height = image_size(paths['image'])
    objects = _parse_label(paths['label'])
    return dict(width=width, height=height, objects=objects)


def _frame_info(idx, frame, calib):
    instances = []
    for obj in frame['objects']:
        mapped = CLASS_MAPPING[obj['name']]
        label = CATEGORIES[mapped] if mapped is not None else -1
        h, w, length = obj['hwl']
        instances.append(dict(
            bbox=list(obj['bbox']), bbox_label=label,
            bbox_3d=list(obj['loc']) + [length, h, w, obj['ry']], bbox_label_3d=label,
            depth=obj['loc'][2], truncated=obj['truncated'],
            occluded=obj['occluded'], alpha=obj['alpha'], score=obj['score'],
            index=len(instances), group_id=len(instances), difficulty=_difficulty(obj),
            num_lidar_pts=-1))
    return dict(
        sample_idx=idx,
        lidar_points=dict(num_pts_feats=_NUM_FEATS, lidar_path=f'{idx}.bin'),
        images=dict(CAM2=dict(img_path=f'{idx}.png', height=frame['height'],
                              width=frame['width'], cam2img=calib['cam2img'],
                              lidar2cam=calib['lidar2cam'], lidar2img=calib['lidar2img'])),
        instances=instances)


def create_dense_infos(root_path, out_dir, extra_tag='dense', splits=None, calib_dir=None):
    """Create mmdet3d v2 (KITTI-style) infos of DENSE / SeeingThroughFog.

    Args:
        root_path (str): The dataset folder (see the module docstring). Only read.
        out_dir (str): Output folder outside ``root_path``; created if missing. It becomes a
            ``data_root`` (symlinks to the dataset folders plus the info files).
        extra_tag (str): Prefix of the info file names. Default: ``'dense'``.
        splits (list[str], optional): Split names (stems of ``splits/*.txt``). Default: every
            ``splits/*.txt``.
        calib_dir (str, optional): Folder with ``calib_cam_stereo_left.json`` and
            ``calib_tf_tree_full.json``. Default: ``<root_path>/calib``.

    Returns:
        dict: ``{split: absolute path of {extra_tag}_infos_{split}.pkl, 'report': path of
        conversion_report.json}``.

    Raises:
        ValueError: If ``out_dir`` lies inside ``root_path`` or ``extra_tag`` is not a plain name.
        DatasetFormatError: Naming the file, if the dataset or a requested split file is
            missing, a split line is not ``YYYY-MM-DD_HH-MM-SS,NNNNN``, a listed frame has no
            image / lidar / label file, a ``.bin`` is empty, not a multiple of 20 bytes or holds
            a NaN/inf point, an
            image is unreadable or claims a decompression-bomb size, a text file is not UTF-8,
            a split lists no frame, a frame is in splits of two groups (``train*`` / ``val*`` /
            ``test*``), a label line has fewer than 15 fields, a non-number, a value that is not
            finite, an unknown class, or (except DontCare) truncated outside [0, 1], occluded
            not in 0-3, a dimension <= 0 or an inverted 2D box; or the calibration is missing,
            malformed or not finite.
    """
    if not extra_tag or osp.basename(extra_tag) != extra_tag or extra_tag.startswith('.'):
        raise ValueError(f'extra_tag must be a plain file-name prefix, got {extra_tag!r}')
    root = osp.realpath(root_path)
    if not osp.isdir(root):
        raise DatasetFormatError(root_path, 'dataset folder not found')
    check_output_outside(out_dir, root_path)
    split_dir = osp.join(root, 'splits')
    if splits is None:
        files = sorted(glob.glob(osp.join(split_dir, '*.txt')))
        if not files:
            raise DatasetFormatError(split_dir, 'no split files (*.txt)')
        splits = [osp.splitext(osp.basename(p))[0] for p in files]
    split_ids = {}
    for split in splits:
        path = osp.join(split_dir, f'{split}.txt')
        if not osp.isfile(path):
            raise DatasetFormatError(path, f'missing: split {split!r} has no list file')
        split_ids[split] = _read_split(path)
    _check_split_groups(split_ids, split_dir)

    calib = load_dense_calib(calib_dir if calib_dir is not None else osp.join(root, 'calib'))
    frames = {}
    for split, ids in split_ids.items():
        split_file = osp.join(split_dir, f'{split}.txt')
        for idx in ids:
            if idx not in frames:
                frames[idx] = _check_frame(root, idx, split_file)

    report = _dense_report(root, split_ids, frames, calib)
    metainfo = dict(categories=dict(CATEGORIES), dataset='dense', info_version='1.1')
    out_dir = osp.abspath(out_dir)
    with staging_dir(out_dir, 'dense') as tmp:
        stage = osp.join(tmp, 'stage')
        os.makedirs(stage)
        top = []
        for folder in (IMAGE_DIR, LIDAR_DIR, 'gt_labels', 'splits'):
            os.symlink(osp.join(root, folder), osp.join(stage, folder), target_is_directory=True)
            top.append(folder)
        names = {}
        for split, ids in split_ids.items():
            names[split] = f'{extra_tag}_infos_{split}.pkl'
            data_list = [_frame_info(idx, frames[idx], calib) for idx in ids]
            dump_pickle(dict(metainfo=metainfo, data_list=data_list),
                        osp.join(stage, names[split]))
            top.append(names[split])
        dump_json(report.to_dict(), osp.join(stage, REPORT_NAME))
        top.append(REPORT_NAME)
        commit_staged(stage, out_dir, top, osp.join(tmp, 'replaced'))
    report.log_summary()
    outputs = {k: osp.join(out_dir, v) for k, v in names.items()}
    outputs['report'] = osp.join(out_dir, REPORT_NAME)
    log(f'DENSE: wrote {len(outputs)} info files ({", ".join(outputs)}) to {out_dir}')
    return outputs
