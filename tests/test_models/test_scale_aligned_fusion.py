"""SAF (SSLFusion's scale-aligned fusion) on spconv sparse tensors of two real KITTI frames,
voxelised, with image levels computed from the real images."""
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmfusion.models.fusion.scale_aligned_fusion import ScaleAlignedFusion
from tests.test_models.test_space_alignment import read_calib

spconv = pytest.importorskip('spconv.pytorch')
pytestmark = pytest.mark.default_scope('mmdet3d')

KITTI = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'kitti', 'training')
VOXEL_SIZE = [0.4, 0.4, 0.4]
PC_RANGE = [0, -40, -3, 70.4, 40, 1]
SPATIAL_SHAPE = [10, 200, 176]  # (z, y, x)


def load_frame(name, every=2):
    pts = np.fromfile(osp.join(KITTI, 'velodyne', name + '.bin'), dtype=np.float32)
    pts = torch.from_numpy(pts.reshape(-1, 4)[::every].copy())
    p2, r0, tr = read_calib(osp.join(KITTI, 'calib', name + '.txt'))
    image = mmcv.imread(osp.join(KITTI, 'image_2', name + '.png'))
    meta = dict(lidar2img=p2 @ r0 @ tr, img_shape=image.shape[:2], ori_shape=image.shape[:2])
    return pts, image, meta


def voxelise(frames):
    """Mean (x, y, z, r) per occupied voxel; indices (batch, z, y, x) as spconv expects."""
    feats, coords = [], []
    low, size = torch.tensor(PC_RANGE[:3]), torch.tensor(VOXEL_SIZE)
    for b, pts in enumerate(frames):
        xyz = ((pts[:, :3] - low) / size).floor().long()
        keep = ((xyz >= 0) & (xyz < torch.tensor(SPATIAL_SHAPE[::-1]))).all(1)
        xyz, pts = xyz[keep], pts[keep]
        uniq, inverse = torch.unique(xyz, dim=0, return_inverse=True)
        mean = torch.zeros(len(uniq), 4).index_add_(0, inverse, pts)
        mean /= torch.bincount(inverse, minlength=len(uniq))[:, None]
        feats.append(mean)
        coords.append(torch.cat([torch.full((len(uniq), 1), b), uniq.flip(1)], 1))
    return spconv.SparseConvTensor(torch.cat(feats), torch.cat(coords).int(), SPATIAL_SHAPE,
                                   len(frames))


def image_levels(images):
    """Two levels (strides 4 and 8, 8 channels) from the real images, padded to 32."""
    torch.manual_seed(0)
    proj = torch.nn.Conv2d(3, 8, 1)
    batch = []
    for image in images:
        img = torch.from_numpy(image).permute(2, 0, 1).float() / 255
        h, w = img.shape[1:]
        batch.append(F.pad(img, (0, -(-w // 32) * 32 - w, 0, -(-h // 32) * 32 - h)))
    batch = torch.stack(batch)
    with torch.no_grad():
        return [proj(F.avg_pool2d(batch, s)) for s in (4, 8)]


@pytest.fixture(scope='module')
def scene():
    import mmfusion.det3d  # noqa: F401  (Native spconv algorithm on CPU)
    frames = [load_frame('000000', every=8), load_frame('000003', every=12)]
    x = voxelise([f[0] for f in frames])
    return x, image_levels([f[1] for f in frames]), [f[2] for f in frames]


def build_backbone_and_saf():
    torch.manual_seed(0)
    conv1 = spconv.SparseSequential(spconv.SubMConv3d(4, 16, 3, padding=1, indice_key='subm1'),
                                    torch.nn.ReLU())
    conv2 = spconv.SparseSequential(spconv.SparseConv3d(16, 32, 3, stride=2, padding=1),
                                    torch.nn.ReLU())
    saf = ScaleAlignedFusion(voxel_channels=(16, 32), mid_channels=(16, 32), voxel_strides=(1, 2),
                             img_levels=(0, 1), img_strides=(4, 8), img_channels=8,
                             voxel_size=VOXEL_SIZE, point_cloud_range=PC_RANGE,
                             layer_cfg=dict(lfm_cfg=dict(num_latents=16)))
    return conv1, conv2, saf


def run(conv1, conv2, saf, x, levels, metas):
    x1 = saf(conv1(x), 0, levels, metas)
    x2 = saf(conv2(x1), 1, levels, metas)
    return x1, x2


def test_two_stages_on_real_frames(scene):
    x, levels, metas = scene
    conv1, conv2, saf = build_backbone_and_saf()
    saf.eval()
    with torch.no_grad():
        s1 = conv1(x)
        x1 = saf(s1, 0, levels, metas)
        s2 = conv2(x1)
        x2 = saf(s2, 1, levels, metas)
        assert saf.stage_level(1) == (1, 8)
        for stage, (inp, out, width) in enumerate([(s1, x1, 16), (s2, x2, 32)]):
            assert torch.equal(out.indices, inp.indices) and out.features.shape[1] == width
            assert torch.isfinite(out.features).all()
            # the reduced scans lie in the camera view: voxel centres project into the image
            _, valid = saf.layers[stage].image_features(inp, levels[stage], metas,
                                                        saf.stage_level(stage)[1])
            for b in range(2):
                assert valid[inp.indices[:, 0] == b].float().mean() > 0.9
        # the stage-to-level map: stage 1 reads level 1 at stride 8
        direct = saf.layers[1](s2, levels[1], metas, 8)
        torch.testing.assert_close(x2.features, direct.features)
    assert (x.indices[:, 0] == 0).sum() != (x.indices[:, 0] == 1).sum()


def test_samples_are_independent(scene):
    """Sample 1 alone gives the same stage outputs as within the batch (eval mode)."""
    x, levels, metas = scene
    conv1, conv2, saf = build_backbone_and_saf()
    saf.eval()
    one = x.indices[:, 0] == 1
    idx = x.indices[one].clone()
    idx[:, 0] = 0
    x_one = spconv.SparseConvTensor(x.features[one], idx, SPATIAL_SHAPE, 1)
    with torch.no_grad():
        _, x2 = run(conv1, conv2, saf, x, levels, metas)
        _, x2_one = run(conv1, conv2, saf, x_one, [lvl[1:] for lvl in levels], metas[1:])
    both = x2.features[x2.indices[:, 0] == 1]
    key = x2.indices[x2.indices[:, 0] == 1, 1:]
    order_a = np.lexsort(key.numpy().T[::-1])
    order_b = np.lexsort(x2_one.indices[:, 1:].numpy().T[::-1])
    assert torch.equal(key[order_a], x2_one.indices[order_b, 1:])
    torch.testing.assert_close(both[order_a], x2_one.features[order_b], atol=1e-4, rtol=1e-4)


def test_backward_reaches_backbone_and_image_branch(scene):
    x, levels, metas = scene
    conv1, conv2, saf = build_backbone_and_saf()
    levels = [lvl.clone().requires_grad_(True) for lvl in levels]
    _, x2 = run(conv1, conv2, saf, x, levels, metas)
    x2.features.square().mean().backward()
    assert all(lvl.grad is not None and lvl.grad.abs().sum() > 0 for lvl in levels)
    for module in (conv1, conv2, saf):
        for name, p in module.named_parameters():
            if 'depth_embedding' in name and p.grad is None:
                continue
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert saf.layers[0].lateral_conv.conv.weight.grad.abs().sum() > 0
    assert saf.layers[1].sam.depth_embedding[0].weight.grad.abs().sum() > 0


def test_config_and_errors():
    from mmdet3d.registry import MODELS

    import mmfusion.det3d  # noqa: F401
    saf = MODELS.build(dict(type='ScaleAlignedFusion'))  # the official 4-stage layout
    # voxel strides 1..8 read FPN levels 0..3 of the official FPN (from C3, strides 8..128)
    assert [saf.stage_level(i) for i in range(4)] == [(0, 8), (1, 16), (2, 32), (3, 64)]
    assert saf.img_strides == [8, 16, 32, 64, 128]
    assert saf.layers[2].lfm.channels == 128 and saf.layers[2].lfm.num_latents == 128
    with pytest.raises(ValueError, match='differ in length'):
        ScaleAlignedFusion(voxel_channels=(16, 32), mid_channels=(32, ))
    with pytest.raises(ValueError, match='img_levels'):
        ScaleAlignedFusion(img_levels=(0, 1, 2, 5))
    with pytest.raises(IndexError, match='levels were given'):
        saf(None, 3, [torch.zeros(1)], [{}])
