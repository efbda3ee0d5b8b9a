"""Tests for the DENSE / SeeingThroughFog converter.

The dataset's terms forbid redistributing its frames, so the fixture builds 3 synthetic frames
in the official layout under tmp_path. Images are 1920x1024 like the real ones (a flat PNG is a
few kB). The calibration json files carry the official values of the two transforms and the
camera matrix used here (from the SeeingThroughFog repository, tools/DatasetViewer/calibs/).
"""
import hashlib
import json
import os
import os.path as osp
import pickle
import shutil

import numpy as np
import pytest
from PIL import Image

from mmfusion.converters._io import DatasetFormatError
from mmfusion.converters.dense import create_dense_infos, load_dense_calib

IDS = ['2018-02-06_14-25-51_00400', '2018-02-07_10-00-00_00010', '2019-01-09_08-30-00_00100']
SPLITS = {'train_clear': IDS[:2], 'test_dense_fog_day': IDS[2:]}
N_POINTS = [7, 3, 5]
P = [2355.722801, 0.0, 988.138054, 0.0, 0.0, 2355.722801, 508.051838, 0.0, 0.0, 0.0, 1.0, 0.0]


def _tf(parent, child, t, q):
    return {'header': {'frame_id': parent, 'seq': 0},
            'transform': {'translation': dict(zip('xyz', t)), 'rotation': dict(zip('xyzw', q))},
            'child_frame_id': child}


TF_TREE = [
    _tf('cam_stereo_left_optical', 'cam_stereo_left_visual', (0, 0, 0), (-.5, .5, -.5, -.5)),
    _tf('body', 'lidar_hdl64_s3_roof', (1.4185, -0.00125, 1.30225),
        (-2.7999696667896407e-05, -0.006999886834005389, -0.003999891334003365,
         0.9999675003067072)),
    _tf('body', 'cam_stereo_left_optical', (2.11688, 0.086961, 0.89075),
        (-0.49797334687178507, 0.49859243146922594, -0.5013107060281987, 0.5021112517245825)),
    _tf('base_link', 'body', (0, 0, 0.35), (0, 0, 0, 1)),
]
DENSE_TAIL = '0.0 0.1 0.0 0.9 0.0 0.0 0.0 1.0 True True True False'


def _line(name, x=1.0, z=20.0, top=100.0, bottom=200.0):
    # type truncated occluded alpha bbox[4] h w l x y z ry, then DENSE's 12 fields
    return (f'{name} 0.0 0 -1.5 500.0 {top} 600.0 {bottom} 1.5 1.6 3.9 {x} 1.7 {z} 0.1 '
            + DENSE_TAIL)


LABELS = {
    IDS[0]: [_line('PassengerCar'), _line('Pedestrian', x=-2.0), _line('DontCare')],
    IDS[1]: [_line('RidableVehicle', top=180.0), _line('LargeVehicle'), _line('Vehicle')],
    IDS[2]: [_line('Obstacle'), _line('PassengerCar', z=30.0)],
}


def _make_dataset(root):
    for folder in ('cam_stereo_left_lut', 'lidar_hdl64_strongest', 'gt_labels/cam_left_labels_TMP',
                   'splits', 'calib'):
        os.makedirs(root / folder)
    rng = np.random.default_rng(0)
    for idx, n in zip(IDS, N_POINTS):
        img = Image.new('RGB', (1920, 1024), (40, 40, 40))
        img.save(root / 'cam_stereo_left_lut' / f'{idx}.png')
        pts = rng.uniform(-10, 10, (n, 5)).astype(np.float32)
        pts.tofile(root / 'lidar_hdl64_strongest' / f'{idx}.bin')
        (root / 'gt_labels/cam_left_labels_TMP' / f'{idx}.txt').write_text(
            '\n'.join(LABELS[idx]) + '\n')
    for split, ids in SPLITS.items():
        (root / 'splits' / f'{split}.txt').write_text(
            ''.join(i[:19] + ',' + i[20:] + '\n' for i in ids))
    (root / 'calib' / 'calib_cam_stereo_left.json').write_text(
        json.dumps({'P': P, 'width': 1920, 'height': 1024}))
    (root / 'calib' / 'calib_tf_tree_full.json').write_text(json.dumps(TF_TREE))


def _tree_hash(folder):
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames + dirnames):
            path = osp.join(dirpath, name)
            digest.update(osp.relpath(path, folder).encode())
            if osp.isfile(path):
                with open(path, 'rb') as f:
                    digest.update(f.read())
    return digest.hexdigest()


def _load(path):
    with open(path, 'rb') as f:
        return pickle.load(f)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('dense')
    _make_dataset(root)
    return root


@pytest.fixture(scope='module')
def converted(dataset, tmp_path_factory):
    before = _tree_hash(dataset)
    out_dir = tmp_path_factory.mktemp('dense_out')
    (out_dir / 'unrelated.txt').write_text('keep me')
    paths = create_dense_infos(str(dataset), str(out_dir))
    return dict(paths=paths, out_dir=out_dir, before=before)


def test_splits_and_outputs(converted, dataset):
    out_dir = converted['out_dir']
    paths = dict(converted['paths'])
    assert paths.pop('report') == osp.join(str(out_dir), 'conversion_report.json')
    assert set(paths) == set(SPLITS)
    for split, path in paths.items():
        assert path == osp.join(str(out_dir), f'dense_infos_{split}.pkl')
    assert sorted(os.listdir(out_dir)) == sorted(
        ['cam_stereo_left_lut', 'lidar_hdl64_strongest', 'gt_labels', 'splits', 'unrelated.txt',
         'conversion_report.json']
        + [f'dense_infos_{s}.pkl' for s in SPLITS])  # no leftovers (.tmp-dense-*)
    with open(out_dir / 'conversion_report.json') as f:
        report = json.load(f)
    assert report['splits'] == {
        'train_clear': {'frames': 2, 'objects': {'Car': 1, 'Cyclist': 1, 'Pedestrian': 1}},
        'test_dense_fog_day': {'frames': 1, 'objects': {'Car': 1}}}
    assert {(d['split'], d['class'], d['count']) for d in report['dropped']} == {
        ('train_clear', 'DontCare', 1), ('train_clear', 'LargeVehicle', 1),
        ('train_clear', 'Vehicle', 1), ('test_dense_fog_day', 'Obstacle', 1)}
    for name in ('cam_stereo_left_lut', 'lidar_hdl64_strongest'):
        link = out_dir / name
        assert osp.islink(link) and osp.isabs(os.readlink(link))
        assert osp.samefile(link, dataset / name)
    assert _tree_hash(dataset) == converted['before']


def test_info_contents(converted, dataset):
    infos = _load(converted['paths']['train_clear'])
    meta = infos['metainfo']
    assert meta['categories'] == {'Pedestrian': 0, 'Cyclist': 1, 'Car': 2}
    assert meta['dataset'] == 'dense'
    assert [d['sample_idx'] for d in infos['data_list']] == SPLITS['train_clear']
    first = infos['data_list'][0]
    lidar = first['lidar_points']
    assert lidar == dict(num_pts_feats=5, lidar_path=f'{IDS[0]}.bin')
    pts = np.fromfile(osp.join(converted['out_dir'], 'lidar_hdl64_strongest', lidar['lidar_path']),
                      dtype=np.float32).reshape(-1, lidar['num_pts_feats'])
    assert pts.shape == (N_POINTS[0], 5)
    cam = first['images']['CAM2']
    assert cam['img_path'] == f'{IDS[0]}.png' and (cam['width'], cam['height']) == (1920, 1024)
    cam2img, lidar2cam = np.array(cam['cam2img']), np.array(cam['lidar2cam'])
    assert cam2img.shape == lidar2cam.shape == (4, 4)
    np.testing.assert_allclose(cam2img[:3], np.reshape(P, (3, 4)))
    np.testing.assert_allclose(np.array(cam['lidar2img']), cam2img @ lidar2cam)
    # A point 10 m ahead of the roof LiDAR: ~9.3 m in front of the camera (which sits 0.7 m
    # further forward), above it (camera y points down) and slightly to its right.
    x, y, z = (lidar2cam @ [10, 0, 0, 1])[:3]
    assert 9.2 < z < 9.4 and -0.6 < y < -0.3 and 0.0 < x < 0.2
    np.testing.assert_allclose(lidar2cam[:3, :3] @ lidar2cam[:3, :3].T, np.eye(3), atol=1e-9)
    inst = first['instances']
    assert [i['bbox_label_3d'] for i in inst] == [2, 0, -1]  # Car, Pedestrian, DontCare
    assert inst[0]['bbox_3d'] == [1.0, 1.7, 20.0, 3.9, 1.5, 1.6, 0.1]  # x y z l h w ry
    assert inst[0]['bbox'] == [500.0, 100.0, 600.0, 200.0]
    assert inst[0]['score'] == 0.9 and inst[0]['num_lidar_pts'] == -1
    assert inst[0]['difficulty'] == 0
    for key in ('bbox_label', 'truncated', 'occluded', 'alpha'):
        assert key in inst[0]
    second = [i['bbox_label_3d'] for i in infos['data_list'][1]['instances']]
    assert second == [1, -1, -1]  # Cyclist, LargeVehicle, Vehicle
    assert infos['data_list'][1]['instances'][0]['difficulty'] == -1  # 20 px high
    test = _load(converted['paths']['test_dense_fog_day'])
    assert [i['bbox_label_3d'] for i in test['data_list'][0]['instances']] == [-1, 2]


def test_load_with_kitti_dataset(converted):
    from mmdet3d.datasets import KittiDataset
    from mmdet3d.utils import register_all_modules
    register_all_modules()
    ds = KittiDataset(
        data_root=str(converted['out_dir']), ann_file='dense_infos_train_clear.pkl',
        data_prefix=dict(pts='lidar_hdl64_strongest', img='cam_stereo_left_lut'),
        pipeline=[dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=5, use_dim=4),
                  dict(type='LoadAnnotations3D'),
                  dict(type='Pack3DDetInputs', keys=['points', 'gt_bboxes_3d', 'gt_labels_3d'])],
        metainfo=dict(classes=['Pedestrian', 'Cyclist', 'Car']), test_mode=False)
    assert len(ds) == 2
    sample = ds[0]
    assert tuple(sample['inputs']['points'].shape) == (N_POINTS[0], 4)
    gt = sample['data_samples'].gt_instances_3d
    assert gt.bboxes_3d.tensor.shape[0] == 2  # DontCare dropped
    assert sorted(gt.labels_3d.tolist()) == [0, 2]
    # camera-frame boxes are turned into LiDAR ones with lidar2cam: the Car 20 m ahead
    car = gt.bboxes_3d.tensor[gt.labels_3d == 2][0]
    assert 19 < float(car[0]) < 22


def test_load_dense_calib(dataset):
    calib = load_dense_calib(str(dataset / 'calib'))
    assert set(calib) == {'cam2img', 'lidar2cam', 'lidar2img'}


def _broken(tmp_path, dataset, edit):
    root = tmp_path / 'ds'
    _make_dataset(root)
    edit(root)
    out = tmp_path / 'out'
    before = _tree_hash(root)
    return root, out, before


@pytest.mark.parametrize('case, edit, culprit, message', [
    ('split', lambda r: (r / 'splits/train_clear.txt').write_text('2018-02-06 14-25-51 00400\n'),
     'splits/train_clear.txt', 'line 1'),
    ('image', lambda r: (r / 'cam_stereo_left_lut' / f'{IDS[1]}.png').unlink(),
     f'cam_stereo_left_lut/{IDS[1]}.png', 'no image file'),
    ('bin', lambda r: (r / 'lidar_hdl64_strongest' / f'{IDS[0]}.bin').unlink(),
     f'lidar_hdl64_strongest/{IDS[0]}.bin', 'no lidar file'),
    ('label', lambda r: (r / 'gt_labels/cam_left_labels_TMP' / f'{IDS[2]}.txt').unlink(),
     f'cam_left_labels_TMP/{IDS[2]}.txt', 'no label file'),
    ('binsize', lambda r: (r / 'lidar_hdl64_strongest' / f'{IDS[0]}.bin').write_bytes(b'0' * 24),
     f'lidar_hdl64_strongest/{IDS[0]}.bin', 'multiple of 20'),
    ('fields', lambda r: (r / 'gt_labels/cam_left_labels_TMP' / f'{IDS[0]}.txt').write_text(
        'PassengerCar 0.0 0 -1.5 500 100 600 200 1.5 1.6\n'),
     f'cam_left_labels_TMP/{IDS[0]}.txt', 'expected at least 15'),
    ('class', lambda r: (r / 'gt_labels/cam_left_labels_TMP' / f'{IDS[0]}.txt').write_text(
        _line('Truck') + '\n'), f'cam_left_labels_TMP/{IDS[0]}.txt', "unknown class 'Truck'"),
    ('calib', lambda r: (r / 'calib/calib_tf_tree_full.json').write_text(json.dumps(TF_TREE[:2])),
     'calib/calib_tf_tree_full.json', 'no transform chain'),
    ('occluded_inf', lambda r: (r / 'gt_labels/cam_left_labels_TMP' / f'{IDS[0]}.txt').write_text(
        _line('PassengerCar').replace(' 0.0 0 -1.5 ', ' 0.0 inf -1.5 ') + '\n'),
     f'cam_left_labels_TMP/{IDS[0]}.txt', 'line 1: occluded is inf (not finite)'),
    ('occluded_range', lambda r: (r / 'gt_labels/cam_left_labels_TMP' / f'{IDS[0]}.txt')
     .write_text(_line('PassengerCar').replace(' 0.0 0 -1.5 ', ' 0.0 7 -1.5 ') + '\n'),
     f'cam_left_labels_TMP/{IDS[0]}.txt', 'occluded 7.0 is not 0, 1, 2 or 3'),
    ('nan_location', lambda r: (r / 'gt_labels/cam_left_labels_TMP' / f'{IDS[2]}.txt').write_text(
        _line('PassengerCar', z='nan') + '\n'),
     f'cam_left_labels_TMP/{IDS[2]}.txt', 'z is nan'),
    ('empty_split', lambda r: (r / 'splits/test_dense_fog_day.txt').write_text('\n'),
     'splits/test_dense_fog_day.txt', "split 'test_dense_fog_day' lists no frames"),
    ('overlap', lambda r: (r / 'splits/test_dense_fog_day.txt').write_text(
        '2019-01-09_08-30-00,00100\n2018-02-06_14-25-51,00400\n'),
     'splits/train_clear.txt', "is in split 'train' and also in split 'test'"),
    ('calib_nan', lambda r: (r / 'calib/calib_cam_stereo_left.json').write_text(
        json.dumps({'P': [float('nan')] + [0.0] * 11})),
     'calib/calib_cam_stereo_left.json', 'not finite'),
    ('utf8', lambda r: (r / 'splits/train_clear.txt').write_bytes(b'2018-02-06_14-25-51,\xff\n'),
     'splits/train_clear.txt', 'line 1: not UTF-8'),
])
def test_errors(tmp_path, dataset, case, edit, culprit, message):
    root, out, before = _broken(tmp_path, dataset, edit)
    with pytest.raises(DatasetFormatError) as err:
        create_dense_infos(str(root), str(out))
    assert err.value.path.endswith(culprit), (case, err.value.path)
    assert message in str(err.value)
    assert not out.exists()  # nothing created
    assert _tree_hash(root) == before


def test_out_dir_inside_dataset_and_explicit_splits(tmp_path, dataset):
    with pytest.raises(ValueError, match='inside the dataset'):
        create_dense_infos(str(dataset), str(dataset / 'out'))
    paths = create_dense_infos(str(dataset), str(tmp_path / 'o'), extra_tag='x',
                               splits=['test_dense_fog_day'],
                               calib_dir=str(dataset / 'calib'))
    assert list(paths) == ['test_dense_fog_day', 'report']
    assert osp.basename(paths['test_dense_fog_day']) == 'x_infos_test_dense_fog_day.pkl'
    with pytest.raises(DatasetFormatError, match='no list file'):
        create_dense_infos(str(dataset), str(tmp_path / 'o2'), splits=['nope'])


def test_points_per_box_in_the_report(tmp_path, dataset):
    """Four points placed inside the first frame's car (camera frame) are counted."""
    root = tmp_path / 'ds'
    shutil.copytree(dataset, root)
    lidar2cam = np.asarray(load_dense_calib(str(root / 'calib'))['lidar2cam'])
    # the car of _line: bottom centre (1.0, 1.7, 20.0), h w l = 1.5 1.6 3.9, ry = 0.1
    inside_cam = np.array([[1.0, 1.0, 20.0], [2.5, 1.6, 20.3], [1.2, 0.3, 19.4], [0.1, 1.0, 20.1]])
    outside_cam = np.array([[1.0, 1.0, 23.0], [1.0, 2.0, 20.0], [4.0, 1.0, 20.0]])
    cam2lidar = np.linalg.inv(lidar2cam)
    xyz = np.concatenate([inside_cam, outside_cam]) @ cam2lidar[:3, :3].T + cam2lidar[:3, 3]
    points = np.concatenate([xyz, np.zeros((len(xyz), 2))], axis=1).astype(np.float32)
    points.tofile(root / 'lidar_hdl64_strongest' / f'{IDS[0]}.bin')
    paths = create_dense_infos(str(root), str(tmp_path / 'out'))
    with open(paths['report']) as f:
        stats = json.load(f)['points_per_box']
    assert stats['Car'] == {'count': 2, 'min': 0, 'median': 2.0, 'mean': 2.0, 'max': 4, 'zero': 1}
    assert stats['Pedestrian']['max'] == 0 and stats['Cyclist']['max'] == 0


def test_points_in_rotated_box():
    from mmfusion.converters.dense import points_in_boxes
    box = dict(loc=[0.0, 0.0, 0.0], hwl=[1.0, 1.0, 4.0], ry=np.pi / 2)
    # ry = 90 deg: the 4 m length runs along the camera z axis
    pts = np.array([[0.0, -0.5, 1.9], [0.0, -0.5, -1.9], [1.9, -0.5, 0.0], [0.0, 0.5, 0.0]])
    assert points_in_boxes(pts, [box], np.eye(4)) == [2]
