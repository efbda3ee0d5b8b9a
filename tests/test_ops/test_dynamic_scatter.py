"""Tests for mmfusion.ops.dynamic_scatter (CPU path, dispatch, and mmcv interplay when importable).

The reference below is a plain Python loop over points keyed by coordinate tuples; mmcv's CUDA op
orders voxels by ``torch.unique(coors, dim=0, sorted=True)``, i.e. sorted tuples.
"""
import importlib
import os.path as osp

import numpy as np
import pytest
import torch

# importlib: ``mmfusion.ops`` may re-export a function of the same name as the submodule.
ds_module = importlib.import_module('mmfusion.ops.dynamic_scatter')
dynamic_scatter = ds_module.dynamic_scatter

KITTI_BIN = '/work/shared/data/kitti/training/velodyne/000000.bin'


def _reference(feats, coors, reduce_type):
    """Dict-of-tuples reference in float64 Python: (voxel_feats list, voxel_coors list)."""
    groups = {}
    for f, c in zip(feats.tolist(), coors.tolist()):
        if any(v < 0 for v in c):
            continue
        groups.setdefault(tuple(c), []).append(f)
    keys = sorted(groups)
    out = []
    for k in keys:
        rows = groups[k]
        cols = list(zip(*rows))
        if reduce_type == 'sum':
            out.append([sum(col) for col in cols])
        elif reduce_type == 'mean':
            out.append([sum(col) / len(col) for col in cols])
        else:
            out.append([max(col) for col in cols])
    return out, [list(k) for k in keys]


def _reference_torch(feats, coors, reduce_type):
    """Same reference built from differentiable torch ops (for gradient comparisons)."""
    groups = {}
    for i, c in enumerate(coors.tolist()):
        if any(v < 0 for v in c):
            continue
        groups.setdefault(tuple(c), []).append(i)
    rows = []
    for k in sorted(groups):
        sel = feats[torch.tensor(groups[k])]
        if reduce_type == 'sum':
            rows.append(sel.sum(0))
        elif reduce_type == 'mean':
            rows.append(sel.mean(0))
        else:
            rows.append(sel.max(0)[0])
    return torch.stack(rows)


def _random_inputs(seed, num=300, channels=5, ndim=3, high=4, neg_frac=0.15, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(num, channels, generator=gen, dtype=dtype)
    coors = torch.randint(0, high, (num, ndim), generator=gen, dtype=torch.int32)
    # Mark some points as out of range in one (random) column, as voxelisation does with -1.
    drop = torch.rand(num, generator=gen) < neg_frac
    col = torch.randint(0, ndim, (num, ), generator=gen)
    coors[drop, col[drop]] = -1
    # Exact duplicate points (same coordinates and features).
    coors[-10:] = coors[:10]
    feats[-10:] = feats[:10]
    return feats, coors


@pytest.mark.parametrize('reduce_type', ['sum', 'mean', 'max'])
@pytest.mark.parametrize('seed,ndim', [(0, 3), (1, 3), (2, 4)])
def test_matches_reference(reduce_type, seed, ndim):
    feats, coors = _random_inputs(seed, ndim=ndim)
    voxel_feats, voxel_coors = dynamic_scatter(feats, coors, reduce_type)
    ref_feats, ref_coors = _reference(feats, coors, reduce_type)
    assert voxel_coors.dtype == torch.int32
    assert voxel_feats.dtype == torch.float32
    assert voxel_coors.tolist() == ref_coors  # same voxels, same (lexicographic) order
    torch.testing.assert_close(voxel_feats, torch.tensor(ref_feats, dtype=torch.float32),
                               rtol=1e-5, atol=1e-5)
    assert voxel_feats.shape == (len(ref_coors), feats.size(1))


def test_order_is_unique_dim_sorted():
    feats, coors = _random_inputs(3)
    _, voxel_coors = dynamic_scatter(feats, coors, 'mean')
    valid = (coors >= 0).all(1)
    expected = torch.unique(coors[valid], dim=0, sorted=True)
    assert torch.equal(voxel_coors, expected)


def test_default_reduce_is_max_and_dtypes_follow_inputs():
    feats, coors = _random_inputs(4, dtype=torch.float64)
    out_default = dynamic_scatter(feats, coors)
    out_max = dynamic_scatter(feats, coors, 'max')
    assert torch.equal(out_default[0], out_max[0])
    assert out_default[0].dtype == torch.float64
    out_long = dynamic_scatter(feats, coors.long(), 'sum')
    assert out_long[1].dtype == torch.int64
    assert torch.equal(out_long[1], out_max[1].long())


@pytest.mark.parametrize('reduce_type', ['sum', 'mean', 'max'])
def test_gradcheck(reduce_type):
    # float64, continuous random features: no ties for 'max'.
    feats, coors = _random_inputs(5, num=40, channels=3, high=3, dtype=torch.float64)
    feats = feats[:30].clone().requires_grad_(True)  # drop the exact duplicates (ties)
    coors = coors[:30]
    assert torch.autograd.gradcheck(lambda f: dynamic_scatter(f, coors, reduce_type)[0], (feats, ))


@pytest.mark.parametrize('reduce_type', ['sum', 'mean', 'max'])
def test_gradient_matches_reference_autograd(reduce_type):
    feats, coors = _random_inputs(6, num=200, channels=4)
    feats = feats[:190].clone()  # no exact duplicates
    coors = coors[:190]
    upstream = None
    grads = []
    for fn in (lambda f: dynamic_scatter(f, coors, reduce_type)[0],
               lambda f: _reference_torch(f, coors, reduce_type)):
        f = feats.clone().requires_grad_(True)
        out = fn(f)
        if upstream is None:
            upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(0))
        (out * upstream).sum().backward()
        grads.append(f.grad)
    torch.testing.assert_close(grads[0], grads[1])
    dropped = ~(coors >= 0).all(1)
    assert dropped.any() and (grads[0][dropped] == 0).all()


def test_max_gradient_on_ties_goes_to_lowest_index_point():
    # Voxel (0,0,0): points 0, 2, 3; channel 0 tied between points 2 and 3, channel 1 between
    # 0 and 3. Voxel (1,0,0): point 1 alone. Point 4 dropped.
    feats = torch.tensor([[1., 5.], [7., 7.], [4., 2.], [4., 5.], [9., 9.]], requires_grad=True)
    coors = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0], [0, -1, 0]],
                         dtype=torch.int32)
    voxel_feats, voxel_coors = dynamic_scatter(feats, coors, 'max')
    assert voxel_coors.tolist() == [[0, 0, 0], [1, 0, 0]]
    assert voxel_feats.tolist() == [[4., 5.], [7., 7.]]
    voxel_feats.backward(torch.tensor([[10., 20.], [30., 40.]]))
    # mmcv's CUDA kernel: atomicMin over the indices of the points equal to the maximum.
    assert feats.grad.tolist() == [[0., 20.], [30., 40.], [10., 0.], [0., 0.], [0., 0.]]


def test_empty_inputs():
    feats = torch.zeros((0, 4))
    coors = torch.zeros((0, 3), dtype=torch.int32)
    for reduce_type in ('sum', 'mean', 'max'):
        voxel_feats, voxel_coors = dynamic_scatter(feats, coors, reduce_type)
        assert voxel_feats.shape == (0, 4) and voxel_feats.dtype == torch.float32
        assert voxel_coors.shape == (0, 3) and voxel_coors.dtype == torch.int32
    # Every point dropped.
    feats = torch.randn(5, 4, requires_grad=True)
    coors = torch.tensor([[-1, 0, 0], [0, -1, 0], [0, 0, -1], [-1, -1, -1], [-5, 2, 2]],
                         dtype=torch.int32)
    for reduce_type in ('sum', 'mean', 'max'):
        voxel_feats, voxel_coors = dynamic_scatter(feats, coors, reduce_type)
        assert voxel_feats.shape == (0, 4) and voxel_coors.shape == (0, 3)
        assert voxel_coors.dtype == torch.int32
        voxel_feats.sum().backward()
        assert (feats.grad == 0).all()
        feats.grad = None


def test_errors():
    feats, coors = _random_inputs(7, num=20)
    with pytest.raises(ValueError, match='reduce_type'):
        dynamic_scatter(feats, coors, 'min')
    with pytest.raises(ValueError, match='number of points'):
        dynamic_scatter(feats[:-1], coors, 'sum')
    with pytest.raises(ValueError, match='shapes'):
        dynamic_scatter(feats[:, 0], coors, 'sum')
    with pytest.raises(ValueError, match='integer'):
        dynamic_scatter(feats, coors.float(), 'sum')
    with pytest.raises(ValueError, match='floating'):
        dynamic_scatter(coors, coors, 'sum')


@pytest.mark.skipif(not osp.isfile(KITTI_BIN), reason='KITTI sample not available')
@pytest.mark.parametrize('reduce_type', ['mean', 'max'])
def test_real_kitti_point_cloud(reduce_type):
    points = torch.from_numpy(np.fromfile(KITTI_BIN, dtype=np.float32)).view(-1, 4)
    assert points.size(0) > 10000
    points = points[torch.randperm(points.size(0), generator=torch.Generator().manual_seed(0))
                    [:30000]]
    voxel_size = torch.tensor([0.05, 0.05, 0.1])
    pc_range = torch.tensor([0, -40, -3, 70.4, 40, 1])
    grid = torch.round((pc_range[3:] - pc_range[:3]) / voxel_size).long()
    assert grid.tolist() == [1408, 1600, 40]  # (x, y, z)
    cxyz = torch.floor((points[:, :3] - pc_range[:3]) / voxel_size).long()
    outside = ((cxyz < 0) | (cxyz >= grid)).any(1)
    coors = cxyz[:, [2, 1, 0]].int()  # mmdet3d order (z, y, x)
    coors[outside] = -1
    assert outside.any() and (~outside).sum() > 1000
    voxel_feats, voxel_coors = dynamic_scatter(points, coors, reduce_type)
    ref_feats, ref_coors = _reference(points, coors, reduce_type)
    assert voxel_coors.tolist() == ref_coors
    assert len(ref_coors) < (~outside).sum()  # several points share voxels
    torch.testing.assert_close(voxel_feats, torch.tensor(ref_feats, dtype=torch.float32),
                               rtol=1e-5, atol=1e-5)


class _FakeCuda(torch.Tensor):
    """CPU tensor that reports a CUDA device, to exercise the dispatch branch without a GPU."""

    @property
    def device(self):
        return torch.device('cuda')


def test_cuda_dispatch_branch(monkeypatch):
    feats, coors = _random_inputs(8, num=30)
    fake_feats = torch.Tensor._make_subclass(_FakeCuda, feats)
    fake_coors = torch.Tensor._make_subclass(_FakeCuda, coors)
    assert fake_feats.device.type == 'cuda'
    calls = []

    def fake_original(f, c, r):
        calls.append(r)
        return 'from-mmcv'

    monkeypatch.setattr(ds_module, '_MMCV_DYNAMIC_SCATTER', fake_original)
    assert dynamic_scatter(fake_feats, fake_coors, 'mean') == 'from-mmcv'
    assert calls == ['mean']
    monkeypatch.setattr(ds_module, '_MMCV_DYNAMIC_SCATTER', None)
    with pytest.raises(RuntimeError, match='mmcv'):
        dynamic_scatter(fake_feats, fake_coors, 'mean')
    # CPU input never touches the original.
    monkeypatch.setattr(ds_module, '_MMCV_DYNAMIC_SCATTER', fake_original)
    assert isinstance(dynamic_scatter(feats, coors, 'sum'), tuple)
    assert calls == ['mean']


def test_mmcv_interplay(monkeypatch):
    import mmcv.ops.scatter_points as sp
    assert ds_module._MMCV_DYNAMIC_SCATTER == sp._DynamicScatter.apply  # bound classmethod
    # mmcv's own op has no CPU kernel in 2.1.0.
    feats, coors = _random_inputs(9, num=50)
    with pytest.raises(Exception):
        sp._DynamicScatter.apply(feats, coors, 'max')
    # Rebinding mmcv's name (as mmfusion.ops does) makes the DynamicScatter module work on CPU,
    # including its batched (4-column coors) loop.
    monkeypatch.setattr(sp, 'dynamic_scatter', dynamic_scatter)
    feats, coors = _random_inputs(10, num=200, ndim=3, neg_frac=0.0)
    batch = torch.randint(0, 2, (200, 1), generator=torch.Generator().manual_seed(1),
                          dtype=torch.int32).sort(0)[0]
    coors4 = torch.cat([batch, coors], dim=1)
    for average in (True, False):
        module = sp.DynamicScatter([0.1, 0.1, 0.1], [0, 0, 0, 1, 1, 1], average_points=average)
        voxels, voxel_coors = module(feats, coors4)
        ref_feats, ref_coors = _reference(feats, coors4, 'mean' if average else 'max')
        assert voxel_coors.tolist() == ref_coors
        torch.testing.assert_close(voxels, torch.tensor(ref_feats), rtol=1e-5, atol=1e-5)
        voxels, voxel_coors = module(feats, coors)
        assert voxel_coors.tolist() == _reference(feats, coors, 'mean')[1]
