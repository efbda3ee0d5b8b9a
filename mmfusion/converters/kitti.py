"""Convert the KITTI 3D object dataset into mmdet3d's v2 infos, reduced scans and GT database.

Dataset: A. Geiger, P. Lenz, R. Urtasun, "Are we ready for autonomous driving? The KITTI vision
benchmark suite", CVPR 2012. https://www.cvlibs.net/datasets/kitti/eval_object.php . Licence
CC BY-NC-SA 3.0 (non-commercial research use); cite the paper.

Official layout read (``root_path`` is the KITTI object folder)::

    kitti/
        ImageSets/{train,val}.txt          one frame id per line (required)
        ImageSets/test.txt                 optional, used only together with testing/
        training/{image_2,calib,label_2,velodyne}/<id>.{png,txt,txt,bin}
        training/planes/<id>.txt           only with ``with_plane=True``
        testing/{image_2,calib,velodyne}/  optional

``trainval`` is ``train`` followed by ``val`` (as in mmdet3d; ``ImageSets/trainval.txt`` is not
read).

What is reused from mmdet3d 1.4.0: its stock converter (``tools/dataset_converters``), which
mmdet3d ships only inside its installed package as ``mmdet3d/.mim/tools`` (not as an importable
``mmdet3d`` submodule), so :func:`_stock_tools` puts that ``.mim`` folder on ``sys.path`` and
imports ``tools.dataset_converters`` from it. Used as is: ``get_kitti_image_info`` and
``_calculate_num_points_in_gt`` (the pieces of ``create_kitti_info_file``),
``_create_reduced_point_cloud`` (with ``save_path``), ``update_infos_to_v2.update_pkl_infos``
and ``create_gt_database.create_groundtruth_database``. The infos therefore are exactly
mmdet3d's v2 format (``metainfo`` + ``data_list`` with ``lidar_points``, ``images`` CAM0-CAM3,
``instances``, ``cam_instances``).

What is fixed, and why:

- The stock flow writes its infos, ``training/velodyne_reduced`` and ``kitti_gt_database`` into
  the dataset folder. Here nothing is written there (an ``out_dir`` inside the dataset is
  refused); ``out_dir`` becomes a complete ``data_root`` instead, with symlinks to the dataset.
- ``create_kitti_info_file`` crashes when there is no ``ImageSets/test.txt`` or no
  ``testing/`` folder (common for people who downloaded only the training part). The test
  split is then skipped with a log line, and produced only when both are present.
- With one ``save_path``, ``create_reduced_point_cloud`` puts training and testing scans of the
  same id into the same file; here each goes to its own ``{training,testing}/velodyne_reduced``.
- ``create_groundtruth_database`` fails with "LoadPointsFromFile is not in the
  mmengine::transform registry" unless the caller has set mmdet3d as the default scope (the
  stock ``create_data.py`` does it in ``main``); it is called here under a temporary one.
- ``update_infos_to_v2`` warns and sleeps 5 s per file when its output folder path is a
  substring of the input path; the v1 infos are therefore kept in a sibling temporary folder.
- Malformed input made the stock code fail deep inside (``IndexError``, ``ValueError: could not
  convert string to float``, a numpy reshape error) or, for a ``DontCare`` line placed before an
  object line, silently mix up the per-object point counts (the stock code assumes ``DontCare``
  lines come last). Every listed frame is validated first (see *Raises*), naming the file.
- Nothing is left half-written: everything is built in ``{out_dir}/.tmp-kitti-XXXXXXXX`` and
  each top-level output is then moved into place with ``os.replace`` (an existing output of the
  same name is replaced as a whole; if a move fails the earlier ones are rolled back).

Output layout (``data_root = out_dir`` for stock mmdet3d KITTI configs, with their
``data_prefix=dict(pts='training/velodyne_reduced', img='training/image_2')``)::

    out_dir/
        ImageSets -> <root>/ImageSets                   absolute symlinks into the dataset
        training/{image_2,calib,label_2,velodyne}[,planes] -> <root>/training/...
        training/velodyne_reduced/<id>.bin              scans reduced to the image_2 view
        testing/...                                     same, only if the test split exists
        {extra_tag}_infos_{train,val,trainval}[,_test].pkl   mmdet3d v2 infos
        {extra_tag}_gt_database/<id>_<class>_<i>.bin    object points (for ObjectSample)
        {extra_tag}_gt_database_img/<id>_<class>_<i>.png  object image crops (multimodal
                                                        GT sampling, kitti_gt_database_images.py)
        {extra_tag}_dbinfos_train.pkl                   its index; paths relative to out_dir
        conversion_report.json                          objects per split and class, DontCare
                                                        regions, LiDAR points per train box
"""
import importlib
import os
import os.path as osp
import pickle
import sys

import numpy as np
from tqdm import tqdm

from ._io import (REPORT_NAME, ConversionReport, DatasetFormatError, check_output_outside,
                  check_splits_disjoint, commit_staged, dump_json, dump_pickle, image_size, log,
                  open_text, staging_dir)
from .kitti_gt_database_images import add_gt_database_image_crops

__all__ = ['create_kitti_infos']

# (folder, file suffix) of every per-frame file the stock converter reads.
_FRAME_FILES = {
    'velodyne': '.bin',
    'calib': '.txt',
    'image_2': '.png',
    'label_2': '.txt',
    'planes': '.txt',
}
# The stock parser (kitti_data_utils.get_kitti_image_info) reads the calibration by line
# position, 12 values per projection matrix, 9 for R0_rect.
_CALIB_KEYS = (('P0', 12), ('P1', 12), ('P2', 12), ('P3', 12), ('R0_rect', 9),
               ('Tr_velo_to_cam', 12), ('Tr_imu_to_velo', 12))
_POINT_BYTES = 16  # float32 x, y, z, reflectance


def _stock_tools():
    """Import mmdet3d's stock dataset-converter modules.

    mmdet3d ships ``tools/dataset_converters`` only as package data, in
    ``site-packages/mmdet3d/.mim/tools`` (a namespace package, no ``__init__.py``); its own
    ``tools/create_data.py`` imports it as ``tools.dataset_converters`` with the repository root
    on the path. So the ``.mim`` folder (the parent of ``tools/``) is appended to ``sys.path``
    here, when the converter runs, rather than at import of this module.

    Returns:
        tuple: modules ``(kitti_converter, kitti_data_utils, update_infos_to_v2,
        create_gt_database)``.

    Raises:
        ImportError: If mmdet3d or its bundled tools are missing, or if another ``tools``
            package shadows them.
    """
    import mmdet3d
    import mmdet3d.datasets  # noqa: F401  registers KittiDataset and the loading transforms
    mim = osp.join(osp.dirname(osp.abspath(mmdet3d.__file__)), '.mim')
    if not osp.isdir(osp.join(mim, 'tools', 'dataset_converters')):
        raise ImportError(f'mmdet3d {mmdet3d.__version__} has no bundled converter in {mim}/tools '
                          '(install mmdet3d from its wheel: pip install mmdet3d==1.4.0)')
    if mim not in sys.path:
        sys.path.append(mim)
    names = ('kitti_converter', 'kitti_data_utils', 'update_infos_to_v2', 'create_gt_database')
    modules = tuple(importlib.import_module(f'tools.dataset_converters.{n}') for n in names)
    expected = osp.realpath(osp.join(mim, 'tools'))
    for mod in modules:
        if not osp.realpath(mod.__file__).startswith(expected + os.sep):
            raise ImportError(f'{mod.__name__} was imported from {mod.__file__}, not from '
                              f'{expected}: another "tools" package shadows mmdet3d\'s converter')
    return modules


# ------------------------------------------------------------------------------------------
# validation


def _read_ids(path):
    """Frame ids of an ``ImageSets/<split>.txt`` (blank lines ignored)."""
    ids = []
    seen = set()
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            text = line.strip()
            if not text:
                continue
            if not text.isdigit():
                raise DatasetFormatError(path, f'line {lineno}: {text!r} is not a numeric frame id')
            idx = int(text)
            if idx in seen:
                raise DatasetFormatError(path, f'line {lineno}: frame id {text} is listed twice')
            seen.add(idx)
            ids.append(idx)
    return ids


def _floats(tokens, path, what):
    try:
        return [float(t) for t in tokens]
    except ValueError:
        raise DatasetFormatError(path, f'{what}: non-numeric value in {tokens!r}') from None


def _check_calib(path):
    with open_text(path) as f:
        lines = f.readlines()
    found = {}
    for lineno, line in enumerate(lines):
        if ':' in line:
            found.setdefault(line.split(':', 1)[0].strip(), lineno)
    for pos, (key, count) in enumerate(_CALIB_KEYS):
        if key not in found:
            raise DatasetFormatError(path, f'missing {key}')
        if found[key] != pos:
            order = ', '.join(k for k, _ in _CALIB_KEYS)
            raise DatasetFormatError(
                path, f'{key} is on line {found[key] + 1}, expected line {pos + 1} (the KITTI '
                f'calibration files list {order} in this order, and mmdet3d reads them by line)')
        line = lines[pos]
        values = line.split(':', 1)[1].split()
        if len(values) != count:
            raise DatasetFormatError(path, f'{key} has {len(values)} values, expected {count}')
        # mmdet3d splits on single spaces: a doubled space would give an empty "number".
        tokens = line.split(' ')[1:count + 1]
        if not line.startswith(f'{key}: ') or len(tokens) != count or '' in tokens:
            raise DatasetFormatError(path, f'{key}: values must be separated by single spaces '
                                     f'after "{key}: "')
        _floats(tokens, path, key)


def _check_label(path):
    with open_text(path) as f:
        lines = f.readlines()
    n_fields = None
    seen_dontcare = False
    for lineno, line in enumerate(lines, 1):
        fields = line.strip().split(' ')
        if '' in fields and len(line.split()) >= 15:
            # mmdet3d splits on single spaces, so a doubled space gives an empty "number"
            raise DatasetFormatError(path, f'line {lineno}: fields must be separated by single '
                                     'spaces')
        if len(fields) < 15 or '' in fields:
            raise DatasetFormatError(
                path, f'line {lineno} has {len(line.split())} fields, expected 15 (type '
                'truncated occluded alpha bbox[4] dimensions[3] location[3] rotation_y), or 16 '
                'with a score')
        if len(fields) > 16:
            raise DatasetFormatError(path, f'line {lineno} has {len(fields)} fields, expected '
                                     '15, or 16 with a score')
        if n_fields is not None and len(fields) != n_fields:
            raise DatasetFormatError(path, f'line {lineno} has {len(fields)} fields, line 1 has '
                                     f'{n_fields} (a score must be given on all lines or none)')
        n_fields = len(fields)
        _floats(fields[1:], path, f'line {lineno}')
        try:
            int(fields[2])
        except ValueError:
            raise DatasetFormatError(path, f'line {lineno}: occluded must be an integer, got '
                                     f'{fields[2]!r}') from None
        if fields[0] == 'DontCare':
            seen_dontcare = True
        elif seen_dontcare:
            raise DatasetFormatError(path, f'line {lineno}: {fields[0]} after a DontCare line '
                                     '(DontCare lines must come last, as in the official labels)')


def _check_planes(path):
    with open_text(path) as f:
        lines = f.readlines()
    if len(lines) < 4 or len(lines[3].split()) != 4:
        raise DatasetFormatError(path, 'expected the ground plane (4 numbers) on line 4')
    _floats(lines[3].split(), path, 'line 4')


def _check_frame(root, folder, idx, kinds, split_file):
    """Validate the files of one frame of ``{root}/{folder}`` (``training`` or ``testing``)."""
    paths = {}
    for kind in kinds:
        path = osp.join(root, folder, kind, f'{idx:06d}{_FRAME_FILES[kind]}')
        if not osp.isfile(path):
            raise DatasetFormatError(
                path, f'missing: frame {idx:06d} is listed in {split_file} but has no {kind} file')
        paths[kind] = path
    size = os.path.getsize(paths['velodyne'])
    if size == 0 or size % _POINT_BYTES:
        raise DatasetFormatError(
            paths['velodyne'], f'truncated or empty point cloud: {size} bytes is not a positive '
            f'multiple of {_POINT_BYTES} (x, y, z, reflectance as float32)')
    image_size(paths['image_2'])
    _check_calib(paths['calib'])
    if 'label_2' in paths:
        _check_label(paths['label_2'])
    if 'planes' in paths:
        _check_planes(paths['planes'])


def _read_splits(root):
    """Frame ids per split; ``test`` only if ``ImageSets/test.txt`` has ids and testing/ exists."""
    imagesets = osp.join(root, 'ImageSets')
    splits = {}
    for split in ('train', 'val'):
        path = osp.join(imagesets, f'{split}.txt')
        if not osp.isfile(path):
            raise DatasetFormatError(path, f'missing: the {split} split list is required')
        splits[split] = _read_ids(path)
        if not splits[split]:
            raise DatasetFormatError(path, 'lists no frames')
    test_file = osp.join(imagesets, 'test.txt')
    test_ids = _read_ids(test_file) if osp.isfile(test_file) else []
    if not test_ids:
        log(f'KITTI: no test split ({test_file} is missing or empty); skipping the test infos')
    elif not osp.isdir(osp.join(root, 'testing')):
        log(f'KITTI: {test_file} lists {len(test_ids)} frames but there is no '
            f'{osp.join(root, "testing")} folder; skipping the test infos')
    else:
        splits['test'] = test_ids
    return splits


def _validate(root, splits, with_plane):
    """Check every file the stock converter will read, with a progress bar."""
    jobs = []
    for split, ids in splits.items():
        if split == 'test':
            kinds = ('velodyne', 'calib', 'image_2')
        else:
            kinds = ('velodyne', 'calib', 'image_2', 'label_2') + (('planes', ) if with_plane
                                                                   else ())
        folder = 'testing' if split == 'test' else 'training'
        split_file = osp.join(root, 'ImageSets', f'{split}.txt')
        jobs += [(folder, idx, kinds, split_file) for idx in ids]
    for folder, idx, kinds, split_file in tqdm(jobs, desc='KITTI: checking frames', unit='frame'):
        _check_frame(root, folder, idx, kinds, split_file)


# The classes of the official KITTI object labels (devkit readme); anything else is refused.
KITTI_CLASSES = ('Car', 'Van', 'Truck', 'Pedestrian', 'Person_sitting', 'Cyclist', 'Tram', 'Misc',
                 'DontCare')
_LABEL_NAMES = ('truncated', 'occluded', 'alpha', 'bbox left', 'bbox top', 'bbox right',
                'bbox bottom', 'height', 'width', 'length', 'x', 'y', 'z', 'rotation_y', 'score')


def _check_points_finite(path):
    points = np.fromfile(path, dtype=np.float32).reshape(-1, 4)
    bad = ~np.isfinite(points).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DatasetFormatError(
            path, f'{int(bad.sum())} point(s) with NaN or inf, the first is point {first} '
            f'({points[first].tolist()})')


def _check_calib_finite(path):
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if ':' not in line:
                continue
            key, values = line.split(':', 1)
            for value in values.split():
                if not np.isfinite(float(value)):
                    raise DatasetFormatError(
                        path, f'line {lineno}: {key.strip()} has a value that is not finite '
                        f'({value})')


def _check_label_values(path):
    """Class names in :data:`KITTI_CLASSES`; finite numbers; KITTI ranges except on DontCare."""
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            name, values = fields[0], [float(v) for v in fields[1:]]
            where = f'line {lineno}'
            if name not in KITTI_CLASSES:
                raise DatasetFormatError(
                    path, f'{where}: unknown class {name!r} (KITTI has {", ".join(KITTI_CLASSES)})')
            for field, value in zip(_LABEL_NAMES, values):
                if not np.isfinite(value):
                    raise DatasetFormatError(path, f'{where}: {field} is {value} (not finite)')
            if name == 'DontCare':
                continue
            truncated, occluded = values[0], values[1]
            if not 0 <= truncated <= 1:
                raise DatasetFormatError(path, f'{where}: truncated {truncated} is outside [0, 1]')
            if occluded not in (0, 1, 2, 3):
                raise DatasetFormatError(path, f'{where}: occluded {fields[2]} is not 0, 1, 2 or 3')
            if min(values[7:10]) <= 0:
                raise DatasetFormatError(
                    path, f'{where}: dimensions (height width length) {values[7:10]} must be > 0')
            if values[5] < values[3] or values[6] < values[4]:
                raise DatasetFormatError(path, f'{where}: 2D box {values[3:7]} is inverted')


def _check_values(root, splits):
    """What :func:`_validate` leaves to the stock converter, which would take it silently.

    Train and val must not share a frame; every point, calibration and label number must be
    finite (a NaN calibration makes the stock point-in-box test keep the whole scan); label
    classes must be KITTI's (the stock v2 update turns an unknown name into label -1) and
    fields in KITTI's ranges.
    """
    imagesets = osp.join(root, 'ImageSets')
    check_splits_disjoint({s: splits[s] for s in ('train', 'val')},
                          {s: osp.join(imagesets, f'{s}.txt') for s in ('train', 'val')})
    jobs = []
    for split, ids in splits.items():
        folder = 'testing' if split == 'test' else 'training'
        jobs += [(folder, idx, split != 'test') for idx in ids]
    for folder, idx, labelled in tqdm(jobs, desc='KITTI: checking values', unit='frame'):
        name = f'{idx:06d}'
        _check_points_finite(osp.join(root, folder, 'velodyne', name + '.bin'))
        _check_calib_finite(osp.join(root, folder, 'calib', name + '.txt'))
        if labelled:
            _check_label_values(osp.join(root, folder, 'label_2', name + '.txt'))


def _kitti_report(stage, names):
    """Counts per split and class, DontCare regions, points per box, from the written infos."""
    report = ConversionReport('KITTI')
    for split in ('train', 'val', 'test'):
        if split not in names:
            continue
        with open(osp.join(stage, names[split]), 'rb') as f:
            infos = pickle.load(f)
        classes = {v: k for k, v in infos['metainfo']['categories'].items()}
        report.add_frames(split, len(infos['data_list']))
        for frame in infos['data_list']:
            for inst in frame.get('instances', []):
                label = inst['bbox_label_3d']
                if label < 0:
                    report.drop(split, 'DontCare', 'DontCare region (label -1, ignored)')
                    continue
                report.add_object(split, classes[label])
                if split == 'train':
                    report.add_points(classes[label], inst['num_lidar_pts'])
    report.notes.append('points_per_box: LiDAR points inside each train box (num_lidar_pts)')
    return report


# ------------------------------------------------------------------------------------------
# conversion


def _link_dataset(root, stage, splits, with_plane):
    """Absolute symlinks from ``stage`` to the dataset's folders; returns top-level names."""
    os.symlink(osp.join(root, 'ImageSets'), osp.join(stage, 'ImageSets'),
               target_is_directory=True)
    names = ['ImageSets']
    for folder in ('training', 'testing'):
        if folder == 'testing' and 'test' not in splits:
            continue
        kinds = ['image_2', 'calib', 'velodyne']
        if folder == 'training':
            kinds.append('label_2')
        if folder == 'training' and (with_plane or osp.isdir(osp.join(root, folder, 'planes'))):
            kinds.append('planes')
        os.makedirs(osp.join(stage, folder, 'velodyne_reduced'))
        for kind in kinds:
            src = osp.join(root, folder, kind)
            if osp.isdir(src):
                os.symlink(src, osp.join(stage, folder, kind), target_is_directory=True)
        names.append(folder)
    return names


def _build(root, stage, v1_dir, splits, extra_tag, with_plane, tools):
    """Write every output into ``stage``; returns {key: name} of the info files."""
    kitti_converter, kitti_data_utils, update_infos_to_v2, create_gt_database = tools
    infos = {}
    for split in ('train', 'val', 'test'):
        if split not in splits:
            continue
        training = split != 'test'
        log(f'KITTI: gathering {split} infos ({len(splits[split])} frames)')
        infos[split] = kitti_data_utils.get_kitti_image_info(
            root, training=training, label_info=training, velodyne=True, calib=True,
            with_plane=with_plane and training, image_ids=list(splits[split]),
            relative_path=True)
        if training:
            kitti_converter._calculate_num_points_in_gt(root, infos[split], relative_path=True)
    infos['trainval'] = infos['train'] + infos['val']

    v1_paths = {}
    for split, split_infos in infos.items():
        v1_paths[split] = osp.join(v1_dir, f'{extra_tag}_infos_{split}.pkl')
        dump_pickle(split_infos, v1_paths[split])

    for split in ('train', 'val', 'test'):
        if split in v1_paths:
            folder = 'testing' if split == 'test' else 'training'
            log(f'KITTI: reducing the {split} point clouds to the image_2 field of view')
            kitti_converter._create_reduced_point_cloud(
                root, v1_paths[split], save_path=osp.join(stage, folder, 'velodyne_reduced'))

    names = {}
    for split, path in v1_paths.items():
        update_infos_to_v2.update_pkl_infos('kitti', out_dir=stage, pkl_path=path)
        names[split] = osp.basename(path)

    # data_root=stage, so the database's relative paths ('{extra_tag}_gt_database/...') and the
    # loader's data_prefix (training/velodyne_reduced) resolve the same way from out_dir.
    # The stock function builds its pipeline through mmengine's root TRANSFORMS registry, which
    # finds LoadPointsFromFile only under the 'mmdet3d' default scope (the stock create_data.py
    # sets it globally in its main); it is set here for this call only.
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        create_gt_database.create_groundtruth_database(
            'KittiDataset', stage, extra_tag, osp.join(stage, names['train']),
            relative_path=False, with_mask=False)
    names['dbinfos'] = f'{extra_tag}_dbinfos_train.pkl'
    for name in (names['dbinfos'], f'{extra_tag}_gt_database'):
        if not osp.lexists(osp.join(stage, name)):
            raise RuntimeError(f'mmdet3d did not produce {name}')
    return names


def create_kitti_infos(root_path, out_dir, extra_tag='kitti', with_plane=False):
    """Create mmdet3d v2 infos, reduced point clouds and the GT database of KITTI.

    Args:
        root_path (str): The KITTI object folder (holding ``ImageSets`` and ``training``).
            Only read, never written.
        out_dir (str): Output folder, outside ``root_path``; created if missing. It becomes a
            complete ``data_root`` for mmdet3d's KITTI configs (see the module docstring).
        extra_tag (str): Prefix of the output names. Default: ``'kitti'``.
        with_plane (bool): Also read ``training/planes`` (ground planes) into the train/val
            infos. Default: False.

    Returns:
        dict: Absolute output paths, ``{'train', 'val', 'trainval', ['test',] 'dbinfos',
        'report'}`` (``'report'``: ``conversion_report.json``);
        ``'test'`` only when ``ImageSets/test.txt`` and ``testing/`` both exist.

    Raises:
        ValueError: If ``out_dir`` lies inside ``root_path`` or ``extra_tag`` is not a plain name.
        DatasetFormatError: Naming the file, if ``ImageSets/{train,val}.txt`` is missing,
            empty, or holds a non-numeric or repeated id; a listed frame has no velodyne / calib /
            image_2 / label_2 (/ planes) file; a velodyne ``.bin`` is empty or not a multiple
            of 16 bytes; a calib file lacks one of P0-P3, R0_rect, Tr_velo_to_cam,
            Tr_imu_to_velo, has them out of the official order or with a wrong number of
            values; a label line has fewer than 15 (or more than 16) fields, a non-number, or
            follows a ``DontCare`` line; an image is unreadable or claims a decompression-bomb
            size; a text file is not UTF-8; a frame is in both train and val; a point,
            calibration or label value is NaN or inf; a label class is not one of
            :data:`KITTI_CLASSES`; or (except DontCare) truncated is outside [0, 1], occluded
            not 0-3, a dimension <= 0 or the 2D box inverted.
        ImportError: If mmdet3d's bundled converter cannot be imported.
    """
    if not extra_tag or osp.basename(extra_tag) != extra_tag or extra_tag.startswith('.'):
        raise ValueError(f'extra_tag must be a plain file-name prefix, got {extra_tag!r}')
    root = osp.realpath(root_path)
    if not osp.isdir(root):
        raise DatasetFormatError(root_path, 'dataset folder not found')
    check_output_outside(out_dir, root_path)
    splits = _read_splits(root)
    _validate(root, splits, with_plane)
    _check_values(root, splits)
    tools = _stock_tools()

    out_dir = osp.abspath(out_dir)
    with staging_dir(out_dir, 'kitti') as tmp:
        stage = osp.join(tmp, 'stage')
        v1_dir = osp.join(tmp, 'v1')  # not under stage: see update_kitti_infos' 5 s sleep
        os.makedirs(stage)
        os.makedirs(v1_dir)
        top = _link_dataset(root, stage, splits, with_plane)
        names = _build(root, stage, v1_dir, splits, extra_tag, with_plane, tools)
        top += [names[k] for k in ('train', 'val', 'trainval', 'test') if k in names]
        top += [f'{extra_tag}_gt_database', names['dbinfos']]
        top.append(add_gt_database_image_crops(stage, names['train'], names['dbinfos'],
                                               extra_tag))
        report = _kitti_report(stage, names)
        dump_json(report.to_dict(), osp.join(stage, REPORT_NAME))
        top.append(REPORT_NAME)
        commit_staged(stage, out_dir, top, osp.join(tmp, 'replaced'))
    report.log_summary()
    outputs = {k: osp.join(out_dir, v) for k, v in names.items()}
    outputs['report'] = osp.join(out_dir, REPORT_NAME)
    log(f'KITTI: wrote {", ".join(sorted(outputs))} to {out_dir}')
    return outputs
