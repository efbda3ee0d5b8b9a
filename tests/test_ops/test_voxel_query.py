"""Voxel R-CNN's voxel query against a literal Python transcription of the official kernel's
loop, on the voxels of the real KITTI frame 000001 at strides 1 and 4."""
import os.path as osp

import numpy as np
import pytest
import torch

from mmfusion.ops.voxel_centers import voxel_centers
from mmfusion.ops.voxel_query import query_voxel_coords, voxel_query

KITTI = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'kitti', 'training')
VOXEL_SIZE = [0.05, 0.05, 0.1]
PC_RANGE = [0, -40, -3, 70.4, 40, 1]


def kitti_voxel_indices(frame='000001', batch=0):
    """(M, 4) int64 (batch, z, y, x) of the occupied input voxels of a real frame (flooring)."""
    pts = np.fromfile(osp.join(KITTI, 'velodyne', f'{frame}.bin'), dtype=np.float32)
    pts = pts.reshape(-1, 4)[:, :3]
    low, high = np.array(PC_RANGE[:3]), np.array(PC_RANGE[3:])
    pts = pts[((pts >= low) & (pts < high)).all(1)]
    xyz = np.floor((pts - low) / np.array(VOXEL_SIZE)).astype(np.int64)
    zyx = np.unique(xyz[:, ::-1], axis=0)
    return torch.from_numpy(np.concatenate([np.full((len(zyx), 1), batch), zyx], 1))


def downsample(indices, stride):
    """Indices of the voxels at ``stride``: unique(index // stride) per sample."""
    return torch.unique(torch.cat([indices[:, :1], indices[:, 1:] // stride], 1), dim=0)


def reference_query(query_xyz, query_batch, voxel_xyz, voxel_indices, stride, query_range,
                    radius, nsample):
    """The official kernel's loop, query by query, in float32."""
    table = {tuple(v): i for i, v in enumerate(voxel_indices.tolist())}
    coords = query_voxel_coords(query_xyz, VOXEL_SIZE, PC_RANGE, stride).tolist()
    radius2 = np.float32(radius) * np.float32(radius)
    vxyz, qxyz = voxel_xyz.numpy(), query_xyz.numpy()
    rz, ry, rx = query_range
    idx, empty = [], []
    for q, (x, y, z) in enumerate(coords):
        b, found = int(query_batch[q]), []
        for dz in range(-rz, rz + 1):
            for dy in range(-ry, ry + 1):
                for dx in range(-rx, rx + 1):
                    i = table.get((b, z + dz, y + dy, x + dx))
                    if i is None:
                        continue
                    d = vxyz[i] - qxyz[q]
                    if d[0] * d[0] + d[1] * d[1] + d[2] * d[2] > radius2:
                        continue
                    found.append(i)
        if found:
            found = found[:nsample]
            idx.append(found + [found[0]] * (nsample - len(found)))
        else:
            idx.append([0] * nsample)
        empty.append(not found)
    return torch.tensor(idx), torch.tensor(empty)


@pytest.fixture(scope='module')
def two_frame_voxels():
    """Voxels of frames 000001 (sample 0) and 000002 (sample 1)."""
    return torch.cat([kitti_voxel_indices('000001', 0), kitti_voxel_indices('000002', 1)])


@pytest.mark.parametrize('stride,radius', [(1, 0.2), (4, 0.8)])
def test_matches_kernel_loop_on_kitti(two_frame_voxels, stride, radius):
    indices = downsample(two_frame_voxels, stride)
    centres = voxel_centers(indices, VOXEL_SIZE, PC_RANGE, stride)
    gen = torch.Generator().manual_seed(stride)
    n = 200
    low, high = torch.tensor(PC_RANGE[:3]), torch.tensor(PC_RANGE[3:])
    uniform = torch.rand(n, 3, generator=gen) * (high - low) + low
    near = centres[torch.randint(len(centres), (n, ), generator=gen)]
    near = near + (torch.rand(n, 3, generator=gen) - 0.5) * 2 * radius
    on_centre = centres[torch.randint(len(centres), (n, ), generator=gen)]
    query = torch.cat([uniform, near, on_centre])
    batch = torch.randint(2, (len(query), ), generator=gen)
    idx, empty = voxel_query(query, batch, centres, indices, VOXEL_SIZE, PC_RANGE, (4, 4, 4),
                             radius, 16, stride, chunk_size=128)
    ref_idx, ref_empty = reference_query(query, batch, centres, indices, stride, (4, 4, 4),
                                         radius, 16)
    assert torch.equal(empty, ref_empty)
    assert torch.equal(idx, ref_idx)
    # the test has teeth: found, empty, padded and full queries all occur
    count = torch.tensor([len(set(row)) for row in ref_idx.tolist()])
    assert ref_empty.any() and (~ref_empty).sum() > n
    assert ((count > 1) & (count < 16)).any() and (count == 16).any()
    assert (indices[idx[~empty].flatten(), 0] == batch[~empty].repeat_interleave(16)).all()


def test_anisotropic_range_small_nsample_and_chunks(two_frame_voxels):
    """A range smaller than the radius (the range limits) and chunking do not change results."""
    indices = downsample(two_frame_voxels, 2)
    centres = voxel_centers(indices, VOXEL_SIZE, PC_RANGE, 2)
    gen = torch.Generator().manual_seed(7)
    query = centres[torch.randint(len(centres), (150, ), generator=gen)]
    query = query + (torch.rand(150, 3, generator=gen) - 0.5) * 0.4
    batch = indices[torch.randint(len(indices), (150, ), generator=gen), 0]
    args = (query, batch, centres, indices, VOXEL_SIZE, PC_RANGE, (1, 2, 3), 0.5, 4, 2)
    idx, empty = voxel_query(*args, chunk_size=7)
    ref_idx, ref_empty = reference_query(query, batch, centres, indices, 2, (1, 2, 3), 0.5, 4)
    assert torch.equal(idx, ref_idx) and torch.equal(empty, ref_empty)
    idx_one_chunk, _ = voxel_query(*args, chunk_size=10**6)
    assert torch.equal(idx, idx_one_chunk)


def test_degenerate_inputs():
    indices = kitti_voxel_indices()[:100]
    centres = voxel_centers(indices, VOXEL_SIZE, PC_RANGE)
    idx, empty = voxel_query(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), centres,
                             indices, VOXEL_SIZE, PC_RANGE)
    assert idx.shape == (0, 16) and empty.shape == (0, )
    # no voxels at all, and a query in a sample that has none
    idx, empty = voxel_query(centres[:3], torch.zeros(3, dtype=torch.long), centres[:0],
                             indices[:0], VOXEL_SIZE, PC_RANGE)
    assert empty.all() and (idx == 0).all()
    _, empty = voxel_query(centres[:3], torch.ones(3, dtype=torch.long), centres, indices,
                           VOXEL_SIZE, PC_RANGE)
    assert empty.all()
    with pytest.raises(ValueError, match='query_xyz'):
        voxel_query(centres[:, :2], torch.zeros(100, dtype=torch.long), centres, indices,
                    VOXEL_SIZE, PC_RANGE)
    with pytest.raises(ValueError, match='voxel_xyz'):
        voxel_query(centres, torch.zeros(100, dtype=torch.long), centres[:5], indices,
                    VOXEL_SIZE, PC_RANGE)
