"""Benchmark Voxel R-CNN's voxel RoI pooling (``VoxelRoIGridPooling``) on CPU.

Input: the voxels of one real KITTI frame (default the bundled training frame 000001, points
inside the KITTI range floored to 0.05 x 0.05 x 0.1 m voxels), downsampled to strides 1 / 2 / 4 /
8 by ``unique(index // stride)`` as four sparse scales with random features of 16 / 32 / 64 / 64
channels (the official backbone's x_conv1..x_conv4); the official pooling settings (6 x 6 x 6
grid, MLPs (32, 32), query range (4, 4, 4), radii 0.2 / 0.4 / 0.8 / 1.6 m, 16 samples, max pool,
pre-MLP). RoIs (default 128, one sample, as the official ROI_PER_IMAGE): half car-sized boxes
(3.9 x 1.6 x 1.56 m, random yaw) centred on random occupied stride-8 voxels, half uniform random
boxes in the range (the mix of foreground and background RoIs the sampler gives).

Measured, per thread count, each in a fresh subprocess (``torch.set_num_threads``): the voxel
query alone per scale (``torch.no_grad``), the extractor's forward in eval mode under
``torch.no_grad`` (inference), and forward + backward in train mode (training). Timings are
wall clock, best and median of ``--repeat`` after one warm-up. Peak memory: increase of the
process's peak resident set size (``VmHWM``, reset through /proc/self/clear_refs just before the
run) over its resident size at that moment; Linux only.

Example::

    python tools/analysis_tools/benchmark_voxel_roi_pooling.py --threads 1 2 --repeat 3 \\
        --out docs/benchmarks/voxel_roi_pooling_cpu.json
"""
import argparse
import importlib
import json
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from mmfusion.utils.process_memory import reset_peak_rss, status_bytes

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
VOXEL_SIZE = [0.05, 0.05, 0.1]
PC_RANGE = [0, -40, -3, 70.4, 40, 1]
SCALES = (('x_conv1', 1, 16, 0.2), ('x_conv2', 2, 32, 0.4), ('x_conv3', 4, 64, 0.8),
          ('x_conv4', 8, 64, 1.6))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--points', default=osp.join(REPO, 'tests', 'data', 'kitti', 'training',
                                                     'velodyne', '000001.bin'),
                        help='KITTI velodyne .bin (x, y, z, intensity float32)')
    parser.add_argument('--rois', type=int, default=128, help='RoIs (one sample)')
    parser.add_argument('--repeat', type=int, default=3, help='timed runs after one warm-up')
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='work_dirs/benchmarks/voxel_roi_pooling_cpu.json')
    parser.add_argument('--child', type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


def make_inputs(args):
    """Sparse scales of the frame, the strides and (N, 8) RoIs ``[0, x, y, z, dx, dy, dz, yaw]``."""
    from spconv.pytorch import SparseConvTensor
    gen = torch.Generator().manual_seed(args.seed)
    pts = np.fromfile(args.points, dtype=np.float32).reshape(-1, 4)[:, :3]
    low, high = np.array(PC_RANGE[:3]), np.array(PC_RANGE[3:])
    pts = pts[((pts >= low) & (pts < high)).all(1)]
    zyx = np.unique(np.floor((pts - low) / VOXEL_SIZE).astype(np.int64)[:, ::-1], axis=0)
    base = torch.from_numpy(np.concatenate([np.zeros((len(zyx), 1), np.int64), zyx], 1))
    shape = np.array([41, 1600, 1408])
    feats, strides, counts = {}, {}, {}
    for name, stride, channels, _ in SCALES:
        ind = torch.unique(torch.cat([base[:, :1], base[:, 1:] // stride], 1), dim=0).int()
        feats[name] = SparseConvTensor(torch.randn(len(ind), channels, generator=gen), ind,
                                       (-(-shape // stride)).tolist(), batch_size=1)
        strides[name] = stride
        counts[name] = len(ind)
    voxel_centers = importlib.import_module('mmfusion.ops.voxel_centers').voxel_centers
    coarse = voxel_centers(feats['x_conv4'].indices, VOXEL_SIZE, PC_RANGE, 8)
    n_fg = args.rois // 2
    fg = torch.cat([coarse[torch.randint(len(coarse), (n_fg, ), generator=gen)],
                    torch.tensor([3.9, 1.6, 1.56]).expand(n_fg, 3),
                    torch.rand(n_fg, 1, generator=gen) * 6.28 - 3.14], 1)
    fg[:, 2] -= 0.78  # centre -> bottom
    n_bg = args.rois - n_fg
    bg = torch.rand(n_bg, 7, generator=gen) * torch.tensor(
        [70., 80., 2., 4., 2., 1., 6.28]) + torch.tensor([0., -40., -2.5, 0.5, 0.5, 1., -3.14])
    rois = torch.cat([torch.zeros(args.rois, 1), torch.cat([fg, bg])], 1)
    return feats, strides, rois, counts


def build_extractor():
    from mmdet3d.registry import MODELS
    from mmengine.registry import init_default_scope

    import mmfusion.det3d  # noqa: F401  (registers VoxelRoIGridPooling)
    init_default_scope('mmdet3d')
    extractor = MODELS.build(dict(
        type='VoxelRoIGridPooling', feature_sources=[s[0] for s in SCALES],
        in_channels=[s[2] for s in SCALES], voxel_size=VOXEL_SIZE, point_cloud_range=PC_RANGE,
        grid_size=6, mlp_channels=[(32, 32)] * 4, query_ranges=[(4, 4, 4)] * 4,
        radii=[s[3] for s in SCALES], nsamples=[16] * 4, pre_mlp=True, pool_mode='max'))
    extractor.init_weights()
    return extractor


def timed(fn, repeat):
    """One warm-up, then ``repeat`` timed runs; returns the summary and the peak RSS increase."""
    fn()
    before = reset_peak_rss()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    peak = max(status_bytes('VmHWM') - before, 0) / 2**20
    return dict(runs_s=[round(t, 4) for t in times], best_s=round(min(times), 4),
                median_s=round(statistics.median(times), 4), peak_extra_mib=round(peak, 1))


def child(args):
    """Everything for one thread count, in this (fresh) process; prints one JSON line."""
    torch.set_num_threads(args.child)
    voxel_query = importlib.import_module('mmfusion.ops.voxel_query').voxel_query
    feats, strides, rois, counts = make_inputs(args)
    extractor = build_extractor()
    grid = extractor.roi_grid_points(rois[:, 1:]).reshape(-1, 3)
    batch = torch.zeros(len(grid), dtype=torch.long)
    result = dict(threads=args.child, voxels_per_scale=counts, grid_points=len(grid), query={})
    voxel_centers = importlib.import_module('mmfusion.ops.voxel_centers').voxel_centers
    for name, stride, _, radius in SCALES:
        ind = feats[name].indices
        centres = voxel_centers(ind, VOXEL_SIZE, PC_RANGE, stride)
        with torch.no_grad():
            _, empty = voxel_query(grid, batch, centres, ind, VOXEL_SIZE, PC_RANGE, (4, 4, 4),
                                   radius, 16, stride)
            result['query'][name] = timed(
                lambda: voxel_query(grid, batch, centres, ind, VOXEL_SIZE, PC_RANGE, (4, 4, 4),
                                    radius, 16, stride), args.repeat)
        result['query'][name]['non_empty_fraction'] = round(float((~empty).float().mean()), 4)

    def inference():
        with torch.no_grad():
            return extractor(feats, strides, rois)

    def training():
        out = extractor(feats, strides, rois)
        out.square().mean().backward()

    extractor.eval()
    result['forward_eval_no_grad'] = timed(inference, args.repeat)
    extractor.train()
    result['forward_backward_train'] = timed(training, args.repeat)
    print(json.dumps(result))


def cpu_description():
    model = 'unknown'
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    model = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return dict(torch=torch.__version__, cpu_model=model, cpu_count=os.cpu_count(),
                python=platform.python_version(), platform=platform.platform())


def main():
    args = parse_args()
    if args.child is not None:
        child(args)
        return
    report = dict(
        module='mmfusion.models.roi_heads.VoxelRoIGridPooling (+ mmfusion.ops.voxel_query)',
        settings=dict(grid_size=6, scales=[dict(name=n, stride=s, channels=c, radius=r)
                                           for n, s, c, r in SCALES],
                      mlp_channels=[32, 32], query_range=[4, 4, 4], nsample=16,
                      rois=args.rois, points=osp.relpath(args.points, REPO)),
        timing=('wall clock, best / median of --repeat after one warm-up, each thread count in '
                'a fresh subprocess; peak_extra_mib = peak RSS (VmHWM) increase during the '
                'timed runs'),
        command=' '.join([osp.basename(sys.executable)] + sys.argv),
        device=cpu_description(),
        load_average_at_start=[round(x, 2) for x in os.getloadavg()],
        runs=[])
    argv = sys.argv[1:]
    for threads in args.threads:
        cmd = [sys.executable, osp.abspath(__file__)] + argv + ['--child', str(threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        if proc.returncode != 0:
            sys.exit(f'child with {threads} threads failed:\n{proc.stderr[-4000:]}')
        run = json.loads(proc.stdout.strip().splitlines()[-1])
        report['runs'].append(run)
        keys = ('threads', 'forward_eval_no_grad', 'forward_backward_train')
        print(json.dumps({k: run[k] for k in keys}, indent=1), flush=True)
    report['load_average_at_end'] = [round(x, 2) for x in os.getloadavg()]
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=2)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
