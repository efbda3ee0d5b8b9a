"""Reduce KITTI velodyne scans to the image_2 field of view (how tests/data/kitti was made).

Keeps the points whose projection through ``P2 @ R0_rect @ Tr_velo_to_cam`` lies inside the
image with positive camera depth: the same set mmdet3d keeps in ``velodyne_reduced``. The output
is in the official format (float32 x, y, z, reflectance).

Usage: python tools/misc/reduce_kitti_to_fov.py SRC_TRAINING_DIR DST_TRAINING_DIR
"""
import argparse
import os
import os.path as osp

import numpy as np
from PIL import Image


def read_calib(path):
    """Return P2 (3, 4), R0_rect (4, 4) and Tr_velo_to_cam (4, 4) of a KITTI calib file."""
    rows = {}
    with open(path) as f:
        for line in f:
            if ':' in line:
                key, vals = line.split(':', 1)
                rows[key.strip()] = np.array(vals.split(), dtype=np.float64)
    p2 = rows['P2'].reshape(3, 4)
    r0 = np.eye(4)
    r0[:3, :3] = rows['R0_rect'].reshape(3, 3)
    tr = np.eye(4)
    tr[:3, :4] = rows['Tr_velo_to_cam'].reshape(3, 4)
    return p2, r0, tr


def reduce_frame(points, p2, r0, tr, width, height):
    """Mask of the (N, 4) points that project inside a width x height image."""
    xyz1 = np.concatenate([points[:, :3], np.ones((len(points), 1))], axis=1)
    cam = (r0 @ tr @ xyz1.T).T
    uvw = (p2 @ cam.T).T
    depth = uvw[:, 2]
    u = uvw[:, 0] / np.maximum(depth, 1e-6)
    v = uvw[:, 1] / np.maximum(depth, 1e-6)
    return (depth > 0) & (u >= 0) & (u < width) & (v >= 0) & (v < height)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src')
    parser.add_argument('dst')
    args = parser.parse_args()
    os.makedirs(osp.join(args.dst, 'velodyne'), exist_ok=True)
    for name in sorted(os.listdir(osp.join(args.src, 'velodyne'))):
        idx = osp.splitext(name)[0]
        pts = np.fromfile(osp.join(args.src, 'velodyne', name), dtype=np.float32).reshape(-1, 4)
        width, height = Image.open(osp.join(args.src, 'image_2', idx + '.png')).size
        keep = reduce_frame(pts, *read_calib(osp.join(args.src, 'calib', idx + '.txt')),
                            width, height)
        pts[keep].tofile(osp.join(args.dst, 'velodyne', name))
        print(f'{name}: {len(pts)} -> {int(keep.sum())} points')


if __name__ == '__main__':
    main()
