"""`import mmfusion.det3d` makes stock mmcv/mmdet3d/spconv modules run on CPU tensors."""
import os.path as osp

import numpy as np
import pytest
import torch

import mmfusion.det3d  # noqa: F401  (installs the fallbacks)
from mmfusion.ops.cpu_fallbacks import FALLBACKS, install_cpu_fallbacks

pytestmark = pytest.mark.default_scope('mmdet3d')


KITTI_BIN = osp.join(osp.dirname(__file__), '..', 'data', 'kitti', 'training', 'velodyne',
                     '000000.bin')
VOXEL_SIZE = [0.05, 0.05, 0.1]
PC_RANGE = [0, -40, -3, 70.4, 40, 1]


def kitti_points():
    return torch.from_numpy(np.fromfile(KITTI_BIN, dtype=np.float32).reshape(-1, 4))


def test_every_listed_name_is_rebound_and_install_is_idempotent():
    import importlib
    for module, attr, spec in FALLBACKS:
        mod_name, _, func = spec.partition(':')
        assert getattr(importlib.import_module(module), attr) is getattr(
            importlib.import_module(mod_name), func), f'{module}.{attr}'
    first = install_cpu_fallbacks()
    assert install_cpu_fallbacks() == first
    import spconv.pytorch as spconv
    forward = spconv.SubMConv3d.forward
    install_cpu_fallbacks()
    assert spconv.SubMConv3d.forward is forward  # not wrapped twice


def test_stock_dynamic_vfe_runs_on_cpu_on_a_real_scan():
    """mmdet3d's DynamicVFE (via mmcv's DynamicScatter) on a real KITTI scan, with backward."""
    from mmcv.ops import Voxelization
    from mmdet3d.registry import MODELS
    points = kitti_points()
    coors = Voxelization(VOXEL_SIZE, PC_RANGE, max_num_points=-1)(points)  # (N, 3) zyx
    keep = (coors >= 0).all(1)
    points, coors = points[keep], coors[keep]
    coors = torch.cat([coors.new_zeros(len(coors), 1), coors], dim=1)  # batch index first
    vfe = MODELS.build(dict(type='DynamicVFE', in_channels=4, feat_channels=[16, 16],
                            voxel_size=VOXEL_SIZE, point_cloud_range=PC_RANGE,
                            with_cluster_center=True, with_voxel_center=True))
    points.requires_grad_(True)
    feats, voxel_coors = vfe(points, coors)
    n_voxels = len(torch.unique(coors, dim=0))
    assert feats.shape == (n_voxels, 16) and voxel_coors.shape == (n_voxels, 4)
    assert torch.isfinite(feats).all()
    feats.sum().backward()
    assert torch.isfinite(points.grad).all() and points.grad.abs().sum() > 0


@pytest.mark.parametrize('subm', [True, False])
def test_spconv_default_algorithm_runs_on_cpu_and_is_restored(subm):
    import spconv.pytorch as spconv
    from spconv.core import ConvAlgo
    torch.manual_seed(0)
    cls = spconv.SubMConv3d if subm else spconv.SparseConv3d
    conv = cls(4, 8, 3, padding=1, indice_key='k' if subm else None)
    assert conv.algo != ConvAlgo.Native  # the CUDA-only default of the cu120 wheel
    points = kitti_points()[:3000]
    idx = ((points[:, :3] - torch.tensor(PC_RANGE[:3])) / 0.4).long()
    idx = torch.unique(idx.clamp(min=0), dim=0)
    indices = torch.cat([idx.new_zeros(len(idx), 1), idx.flip(1)], 1).int()  # (b, z, y, x)
    feats = torch.randn(len(indices), 4, requires_grad=True)
    x = spconv.SparseConvTensor(feats, indices, [int(indices[:, i].max()) + 1 for i in (1, 2, 3)],
                                batch_size=1)
    out = conv(x)
    assert conv.algo != ConvAlgo.Native  # per-call choice, nothing stored
    out.features.sum().backward()
    assert torch.isfinite(feats.grad).all()
    if subm:
        # a submanifold conv keeps the active sites; check one site against a dense 3x3x3 sum
        dense = x.dense()  # (1, C, Z, Y, X)
        w = conv.weight  # KRSC: (out, kz, ky, kx, in)
        b, z, y, xx = indices[0].long().tolist()
        patch = torch.nn.functional.pad(dense, (1, 1, 1, 1, 1, 1))[0, :, z:z + 3, y:y + 3,
                                                                   xx:xx + 3]
        expected = torch.einsum('ozyxi,izyx->o', w, patch) + (conv.bias if conv.bias is not None
                                                              else 0)
        assert torch.allclose(out.features[0], expected, atol=1e-4)
