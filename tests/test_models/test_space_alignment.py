"""SAM (SSLFusion's 3D-to-2D space alignment) on the real KITTI frame 000000: projection against
the calib file by hand, augmentations applied with mmdet3d's own transforms and undone, masking,
and exact sampling of the feature map."""
import os.path as osp
import pickle

import mmcv
import numpy as np
import pytest
import torch
from mmcv.transforms import Resize
from mmdet3d.datasets.transforms import GlobalRotScaleTrans, RandomFlip3D
from mmdet3d.structures import LiDARPoints

from mmfusion.models.fusion.space_alignment import SpaceAlignment
from mmfusion.ops.voxel_centers import voxel_centers

pytestmark = pytest.mark.default_scope('mmdet3d')

KITTI = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'kitti', 'training')


def read_calib(path):
    """P2 (3, 4), R0_rect (4, 4) and Tr_velo_to_cam (4, 4) from a KITTI calib file."""
    rows = {}
    with open(path) as f:
        for line in f:
            if ':' in line:
                key, vals = line.split(':', 1)
                rows[key] = np.array([float(v) for v in vals.split()])
    p2 = rows['P2'].reshape(3, 4)
    r0 = np.eye(4)
    r0[:3, :3] = rows['R0_rect'].reshape(3, 3)
    tr = np.eye(4)
    tr[:3] = rows['Tr_velo_to_cam'].reshape(3, 4)
    return p2, r0, tr


def hand_projection(points):
    """(u, v, depth) of LiDAR points with P2 @ R0_rect @ Tr_velo_to_cam, float64."""
    p2, r0, tr = read_calib(osp.join(KITTI, 'calib', '000000.txt'))
    hom = np.concatenate([points, np.ones((len(points), 1))], axis=1)
    img = (p2 @ r0 @ tr @ hom.T).T
    return img[:, 0] / img[:, 2], img[:, 1] / img[:, 2], img[:, 2]


@pytest.fixture(scope='module')
def frame(kitti_infos_root):
    """Real LiDAR points in the camera view (every 50th), the image, and the converted meta."""
    with open(osp.join(kitti_infos_root, 'kitti_infos_train.pkl'), 'rb') as f:
        infos = pickle.load(f)['data_list']
    info = next(i for i in infos if i['sample_idx'] == 0)
    cam = info['images']['CAM2']
    pts = np.fromfile(osp.join(KITTI, 'velodyne', '000000.bin'), dtype=np.float32)
    pts = pts.reshape(-1, 4)[::50, :3].copy()
    img = mmcv.imread(osp.join(KITTI, 'image_2', '000000.png'))
    meta = dict(lidar2img=np.array(cam['lidar2img']), img_shape=img.shape[:2],
                ori_shape=img.shape[:2])
    return pts, img, meta


def augment(pts, img, meta, seed=0, resize=None, sync_2d=True, flip_v=0.0):
    """Run mmdet3d's GlobalRotScaleTrans and RandomFlip3D (and mmcv's Resize) on a frame.

    Returns:
        tuple: augmented points (M, 3) float32 tensor, the recorded metainfo, augmented image.
    """
    np.random.seed(seed)
    results = dict(meta, points=LiDARPoints(pts.copy(), points_dim=3), img=img.copy())
    if not sync_2d:
        del results['img']  # LiDAR-only flips, decided independently of the image
    if resize is not None:
        results = Resize(scale_factor=resize, keep_ratio=True)(results)
    results = GlobalRotScaleTrans(rot_range=[-0.7, 0.7], scale_ratio_range=[0.9, 1.1],
                                  translation_std=[0.3, 0.3, 0.3])(results)
    results = RandomFlip3D(sync_2d=sync_2d, flip_ratio_bev_horizontal=1.0,
                           flip_ratio_bev_vertical=flip_v)(results)
    keys = ('lidar2img', 'img_shape', 'ori_shape', 'scale_factor', 'flip', 'pcd_rotation',
            'pcd_rotation_angle', 'pcd_scale_factor', 'pcd_trans', 'pcd_horizontal_flip',
            'pcd_vertical_flip', 'transformation_3d_flow')
    aug_meta = {k: results[k] for k in keys if k in results}
    return results['points'].tensor[:, :3].clone(), aug_meta, results.get('img', img)


def position_map(height, width, stride):
    """(2, H_f, W_f) feature map whose value is its cell centre (x, y) in input pixels (edge
    convention), for an input padded to a multiple of 32."""
    h_f, w_f = -(-height // 32) * 32 // stride, -(-width // 32) * 32 // stride
    xs = (torch.arange(w_f, dtype=torch.float64) + 0.5) * stride
    ys = (torch.arange(h_f, dtype=torch.float64) + 0.5) * stride
    return torch.stack([xs.expand(h_f, w_f), ys[:, None].expand(h_f, w_f)]).float()


def test_projection_matches_calib_by_hand(frame):
    pts, _, meta = frame
    sam = SpaceAlignment()
    uv, depth, orig = sam.project(torch.from_numpy(pts), meta)
    u, v, d = hand_projection(pts)
    assert np.abs(uv[:, 0].numpy() - u).max() < 1e-2
    assert np.abs(uv[:, 1].numpy() - v).max() < 1e-2
    assert np.abs(depth.numpy() - d).max() < 1e-4
    torch.testing.assert_close(orig, torch.from_numpy(pts))  # nothing recorded, nothing undone
    # the reduced scan lies in the camera view: almost all points project into the image
    _, inside = sam.image_coords(uv, meta)
    assert inside.float().mean() > 0.95 and (depth > 0).all()


@pytest.mark.parametrize('resize', [None, 0.5])
def test_augmentations_are_undone(frame, resize):
    pts, img, meta = frame
    aug_pts, aug_meta, aug_img = augment(pts, img, meta, seed=1, resize=resize)
    assert aug_meta['flip'] and aug_meta['pcd_horizontal_flip']
    assert aug_meta['transformation_3d_flow'] == ['R', 'S', 'T', 'HF']
    assert (aug_pts - torch.from_numpy(pts)).abs().max() > 1.0  # really moved

    sam = SpaceAlignment()
    uv, depth, orig = sam.project(aug_pts, aug_meta)
    u, v, d = hand_projection(pts)
    assert np.abs(uv[:, 0].numpy() - u).max() < 2e-2
    assert np.abs(uv[:, 1].numpy() - v).max() < 2e-2
    assert np.abs(orig.numpy() - pts).max() < 1e-4

    # pixel positions on the augmented (resized, flipped) image
    h, w = aug_img.shape[:2]
    sx, sy = aug_meta.get('scale_factor', (1.0, 1.0))
    expected = np.stack([w - (u + 0.5) * sx, (v + 0.5) * sy], axis=1)
    q, inside = sam.image_coords(uv, aug_meta)
    assert np.abs(q.numpy() - expected).max() < 2e-2

    # sampling a map of cell centres returns the position itself (bilinear, exact for linear
    # maps between the first and last cell centre), at strides 1 and 4
    sam.with_depth_embedding = False
    for stride in (1, 4):
        feat = position_map(h, w, stride)[None]
        out, valid = sam(aug_pts, torch.zeros(len(pts), dtype=torch.long), feat, [aug_meta],
                         stride=stride)
        right = feat.shape[-1] * stride - stride / 2  # centre of the last column
        interior = valid & (q >= stride / 2).all(1) & (q[:, 0] <= right)
        assert interior.sum() > 0.9 * len(pts)
        torch.testing.assert_close(out[interior], q[interior].float(), atol=3e-2, rtol=0)


def test_lidar_only_flips_are_undone(frame):
    """Horizontal and vertical BEV flips of the points alone (image untouched)."""
    pts, img, meta = frame
    aug_pts, aug_meta, _ = augment(pts, img, meta, seed=2, sync_2d=False, flip_v=1.0)
    assert aug_meta['transformation_3d_flow'] == ['R', 'S', 'T', 'HF', 'VF']
    assert 'flip' not in aug_meta
    uv, _, _ = SpaceAlignment().project(aug_pts, aug_meta)
    u, v, _ = hand_projection(pts)
    assert np.abs(uv.numpy() - np.stack([u, v], 1)).max() < 2e-2


def test_features_invariant_to_augmentation_on_real_image(frame):
    """Same features from the original frame and from the rotated/scaled/flipped frame with the
    flipped image: the depth embedding sees original coordinates, the sampling the right pixel."""
    pts, img, meta = frame
    aug_pts, aug_meta, aug_img = augment(pts, img, meta, seed=3)

    def as_feat(image):
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255

    torch.manual_seed(0)
    sam = SpaceAlignment(coord_scale=50.).eval()
    idx = torch.zeros(len(pts), dtype=torch.long)
    ref, ref_valid = sam(torch.from_numpy(pts), idx, as_feat(img), [meta], stride=1)
    out, valid = sam(aug_pts, idx, as_feat(aug_img), [aug_meta], stride=1)
    assert torch.equal(valid, ref_valid) and valid.float().mean() > 0.95
    torch.testing.assert_close(out, ref, atol=5e-3, rtol=0)
    weights = sam.embed_depth(torch.from_numpy(pts))
    assert ((weights > 0) & (weights < 1)).all() and weights.std() > 0
    # without the weighting the features are the image values themselves
    plain = SpaceAlignment(with_depth_embedding=False)(
        torch.from_numpy(pts), idx, as_feat(img), [meta], stride=1)[0]
    torch.testing.assert_close(ref, plain * weights * ref_valid[:, None], atol=1e-6, rtol=0)


def test_behind_camera_and_outside_image_are_masked(frame):
    pts, _, meta = frame
    front = pts[pts[:, 0] > 10][:50]
    behind = front * np.array([-1, -1, 1], dtype=np.float32)  # mirrored through the sensor
    u, v, d = hand_projection(behind)
    h, w = meta['img_shape']
    naive_inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    assert (d < 0).all() and naive_inside.sum() > 10  # what a plain division would accept
    aside = front + np.array([0, 60, 0], dtype=np.float32)  # far to the left, out of view
    query = np.concatenate([front, behind, aside])
    feat = torch.rand(1, 8, 384 // 4, 1248 // 4) + 1  # no zero anywhere in the map
    idx = torch.zeros(len(query), dtype=torch.long)
    out, valid = SpaceAlignment()(torch.from_numpy(query), idx, feat, [meta], stride=4)
    n = len(front)
    assert valid[:n].all() and not valid[n:].any()
    assert (out[:n].abs().sum(1) > 0).all() and (out[n:] == 0).all()


def test_integer_pixel_reads_feature_map_exactly(frame):
    _, _, meta = frame
    lidar2img = torch.from_numpy(meta['lidar2img']).double()
    gen = torch.Generator().manual_seed(0)
    for stride in (1, 4):
        feat = torch.randn(1, 16, 384 // stride, 1248 // stride, generator=gen)
        cols = torch.tensor([3, 50, 100, 150, 300]) // stride
        rows = torch.tensor([2, 20, 40, 60, 90]) // stride
        # image pixel at the centre of feature cell (row, col): stride * (i + 0.5) - 0.5
        uv = torch.stack([cols, rows], 1).double() * stride + (stride - 1) / 2
        depth = torch.tensor([5., 10., 20., 40., 70.], dtype=torch.float64)
        cam = torch.cat([uv * depth[:, None], depth[:, None], torch.ones(5, 1).double()], 1)
        points = (torch.linalg.inv(lidar2img) @ cam.T).T[:, :3].float()
        out, valid = SpaceAlignment(with_depth_embedding=False)(
            points, torch.zeros(5, dtype=torch.long), feat, [meta], stride=stride)
        assert valid.all()
        # the points are float32: at 70 m their rounding moves the projection by ~1e-5 pixel,
        # which reads up to ~3e-4 off a N(0, 1) feature map (2e-4 failed on some CPUs' BLAS)
        torch.testing.assert_close(out, feat[0, :, rows, cols].T, atol=5e-4, rtol=0)


def test_batch_of_two_samples_and_voxel_centers(frame):
    """Each voxel reads its own sample's image; voxel centres from sparse indices."""
    pts, _, meta = frame
    idx = torch.tensor([[0, 10, 400, 100], [1, 10, 400, 100], [1, 0, 0, 0]])
    centers = voxel_centers(idx, [0.05, 0.05, 0.1], [0, -40, -3, 70.4, 40, 1], stride=2)
    torch.testing.assert_close(centers[2], torch.tensor([0.05, -39.95, -2.9]))
    torch.testing.assert_close(centers[0], torch.tensor([10.05, 0.05, -0.9]))
    feat = torch.stack([torch.zeros(4, 96, 312), torch.ones(4, 96, 312)])
    out, valid = SpaceAlignment(with_depth_embedding=False)(
        centers, idx[:, 0], feat, [meta, meta], stride=4)
    assert valid[:2].all() and not valid[2]
    assert (out[0] == 0).all() and torch.allclose(out[1], torch.ones(4))


def test_bad_input_raises(frame):
    pts, _, meta = frame
    sam = SpaceAlignment()
    points = torch.from_numpy(pts[:4])
    no_flow = dict(meta, pcd_horizontal_flip=True)
    with pytest.raises(ValueError, match='transformation_3d_flow'):
        sam.project(points, no_flow)
    with pytest.raises(KeyError, match='lidar2img'):
        sam.project(points, dict(img_shape=(10, 10)))
    with pytest.raises(ValueError, match='one camera'):
        sam.project(points, dict(meta, lidar2img=np.stack([meta['lidar2img']] * 6)))
    with pytest.raises(ValueError, match='img_feats'):
        sam(points, torch.zeros(4, dtype=torch.long), torch.zeros(2, 3, 8, 8), [meta], stride=4)


def test_real_training_pipeline_metainfo(kitti_infos_root):
    """On the metainfo of mmdet3d's own training pipeline (the tiny MVX-Net config: RandomResize,
    GlobalRotScaleTrans, RandomFlip3D), the colours SAM reads from the augmented image at the
    augmented points match the original image at the un-augmented projection."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from tests.utils import TINY_MVXNET_CFG, kitti_cfg_options
    cfg = Config.fromfile(TINY_MVXNET_CFG)
    cfg.merge_from_dict(kitti_cfg_options(kitti_infos_root))
    init_default_scope('mmdet3d')
    from mmdet3d.registry import DATASETS
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    sam = SpaceAlignment(with_depth_embedding=False)
    flips = set()
    for seed in range(4):
        np.random.seed(seed)
        item = dataset[0]
        meta = item['data_samples'].metainfo
        flips.add(meta['flip'])
        pts = item['inputs']['points'][:, :3]
        image = item['inputs']['img'].float()[None] / 255
        idx = torch.zeros(len(pts), dtype=torch.long)
        feats, valid = sam(pts, idx, image, [meta], stride=1)
        assert valid.float().mean() > 0.9
        uv, _, _ = sam.project(pts, meta)
        original = mmcv.imread(meta['img_path'])
        original = torch.from_numpy(original).permute(2, 0, 1).float() / 255
        ref = sam.sample(original, uv + 0.5, stride=1)
        # a one-row shift of the sampling position as the scale of a wrong alignment
        wrong = sam.sample(original, uv + torch.tensor([0.5, 0.5 + 1 / meta['scale_factor'][1]]),
                           stride=1)
        err = (feats - ref)[valid].abs().mean()
        assert err < 0.7 * (wrong - ref)[valid].abs().mean()
    assert flips == {True, False}
