"""Benchmark the whole SSLFusion detector on a real KITTI frame: latency, parts, memory, FLOPs and
parameters against the number of voxels N.

What is measured, per row (one N, one fusion mode):

- Model: the detector of ``--config`` (default the full KITTI config, ResNet-50 + FPN, 0.05 m
  voxels, 7 SAF layers, Voxel R-CNN head) with random weights (``init_cfg`` of the image
  backbone removed: no pretrained weights here), ``eval()``, ``torch.no_grad``, float32, batch 1.
- Input: the real frame ``--frame`` of the converted KITTI sample (``--data-root``, infos
  ``--ann-file``): its real image (full 1242 x 375, as the test pipeline loads it) and its velodyne
  scan from ``training/velodyne`` through the config's test pipeline. The number of voxels is
  capped at N with the data preprocessor's ``voxel_layer.max_voxels`` (hard voxelisation keeps
  the first N non-empty voxels in point order). The bundled sample's scans are already reduced to
  the camera view (about 20k points, 16.8k voxels at 0.05 m for frame 000000), so where one scan
  holds fewer than N voxels the scans of the sample's other frames are appended to the points
  (``--no-merge`` to disable): every extra scan is a real camera-view KITTI scan in its own LiDAR
  frame, so the merged cloud has the spatial distribution of real KITTI points (denser), while
  the image stays the frame's own. Each row records the actual voxel count and the frames used.
- ``latency_s``: end-to-end ``model.predict`` (image branch, voxel encoder, fused sparse U-Net,
  BEV backbone and neck, RPN with proposal NMS, RoI head with its NMS), median / best of
  ``--repeat`` runs after ``--warmup``. The voxelisation (data preprocessor) is timed apart in
  ``voxelization_s`` and is not part of it.
- ``parts_s`` (medians over the same runs): the parts timed by wrapping them as
  ``SSLFusion.extract_feat`` / ``TwoStage3DDetector.predict`` call them: ``image_branch``
  (``extract_img_feat``: backbone + FPN), ``voxel_encoder``, ``middle_encoder`` (the fused sparse
  U-Net, including its height compression to BEV), ``saf_fusion`` (all SAF calls inside it: SAM,
  lateral convs, LFM), ``bev_backbone_neck``, ``rpn`` (``rpn_head.predict``: head, decoding,
  proposal NMS), ``roi_head`` (``roi_head.predict``: RoI grid pooling, box head, NMS).
- ``peak_mem_mib``: the increase of the process's peak resident set size during one
  ``predict`` (``VmHWM`` reset through /proc/self/clear_refs just before each timed run, minus
  ``VmRSS`` at that moment; largest over the timed runs; Linux only). Measured in the benchmark
  process after the warm-up (not in a fresh process per row as in benchmark_latent_fusion.py);
  rows run in increasing N.
- ``flops``: one extra ``predict``, 2 FLOPs per multiply-add, bias / BN / elementwise ops not
  counted. ``dense_gflops``: ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, matrix
  products) outside the sparse convolutions. ``sparse_conv_gflops``: every spconv convolution
  call counted from its rule book: a forward hook reads the output's
  ``indice_dict[indice_key].indice_pair_num`` (K,) (gathered input/output pairs per kernel
  offset, K = kernel volume) and adds ``2 * pairs * C_in * C_out``; for submanifold convs spconv
  2.3.6 stores only half of the symmetric rule book and leaves the centre offset (one GEMM over
  all voxels) at 0, so there pairs = 2 * sum + N; inverse convs reuse the pairs of the strided
  conv they undo. Measured here: spconv's CPU ``Native`` path does its GEMMs with ``torch.mm``
  from Python, so the counter sees them too; its FLOPs inside the spconv calls are reported
  (``sparse_conv_gflops_seen_by_counter``, equal to the rule-book count on CPU) and left out of
  ``dense_gflops`` so nothing is counted twice (on CUDA the implicit-GEMM kernels are unseen and
  the rule-book count is what remains). torch's counter has no formula for the CPU kernel of
  ``F.scaled_dot_product_attention`` (the ``attention`` fusion mode; measured: 0 FLOPs), so each
  such call it misses is added to ``dense_gflops`` as ``2 * B h L_q L_k (d_qk + d_v)``
  (Q K^T and A V; ``sdpa_gflops_added``). ``counter_gflops_per_part``: the counter's FLOPs per
  part (including the sparse convs it saw, without the added attention FLOPs).
- ``params``: total, trainable (``requires_grad``; the ResNet-50 is frozen in the full config)
  and per part.

Besides the N sweep (``--sizes``, default 5k..80k), ``--lfm-modes`` adds one row per LFM mode of
the fusion (``latent``, ``attention``: full QKV cross-attention, ``concat``) at ``--mode-size``
voxels, the rest of the model unchanged.

On a machine shared with other jobs use ``--threads 1`` (see benchmark_latent_fusion.py).

Example::

    python tools/analysis_tools/benchmark_sslfusion.py --threads 1 --repeat 3 \\
        --lfm-modes latent attention concat \\
        --out docs/benchmarks/sslfusion_kitti_cpu-1thread-epyc.json
"""
import argparse
import copy
import functools
import json
import os
import os.path as osp
import platform
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from torch.utils.flop_counter import FlopCounterMode

from mmfusion.utils.process_memory import reset_peak_rss, status_bytes

DEFAULT_CONFIG = ('projects/SSLFusion/configs/'
                  'sslfusion_r50-fpn_voxel-rcnn_4xb4-80e_kitti-3d-3class.py')
PARTS = ('image_branch', 'voxel_encoder', 'middle_encoder', 'saf_fusion', 'bev_backbone_neck',
         'rpn', 'roi_head')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='SSLFusion config')
    parser.add_argument('--data-root', default='work_dirs/demo_kitti/data/',
                        help='converted KITTI data (tools/create_data.py kitti)')
    parser.add_argument('--ann-file', default='kitti_infos_trainval.pkl')
    parser.add_argument('--pts-prefix', default='training/velodyne',
                        help='scan folder under the data root (default the non-reduced scans)')
    parser.add_argument('--frame', default='000000', help='KITTI frame id')
    parser.add_argument('--sizes', type=int, nargs='+',
                        default=[5000, 10000, 20000, 40000, 80000], help='N voxels (caps)')
    parser.add_argument('--lfm-modes', nargs='*', default=[],
                        choices=['latent', 'attention', 'concat'],
                        help='fusion modes for the ablation rows at --mode-size voxels')
    parser.add_argument('--mode-size', type=int, default=20000)
    parser.add_argument('--no-merge', action='store_true',
                        help="never append other frames' scans (N stays what one scan holds)")
    parser.add_argument('--repeat', type=int, default=3, help='timed runs per row')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs per row')
    parser.add_argument('--no-flops', action='store_true', help='skip the FLOP count')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    parser.add_argument('--out', default='work_dirs/benchmarks/sslfusion_kitti_cpu.json')
    return parser.parse_args(argv)


def load_config(path, data_root, ann_file, pts_prefix):
    """The config pointed at the converted KITTI sample, without pretrained image weights."""
    cfg = Config.fromfile(path)
    cfg.model.img_backbone.init_cfg = None
    ds = cfg.test_dataloader.dataset
    ds.data_root = data_root.rstrip('/') + '/'
    ds.ann_file = ann_file
    ds.data_prefix = dict(pts=pts_prefix, img='training/image_2')
    return cfg


def build_model(cfg, max_voxels, lfm_mode=None):
    """Detector of ``cfg`` (eval mode) with voxels capped at ``max_voxels``."""
    from mmdet3d.registry import MODELS
    cfg = copy.deepcopy(cfg)
    cfg.model.data_preprocessor.voxel_layer.max_voxels = (max_voxels, max_voxels)
    if lfm_mode is not None:
        cfg.model.middle_encoder.fusion.layer_cfg.lfm_cfg.mode = lfm_mode
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


class FrameData:
    """The frame's test-pipeline sample plus the other frames' raw scans for merging.

    Raises:
        FileNotFoundError: if the infos or a scan file is missing.
        KeyError: if the frame is not in the infos.
    """

    def __init__(self, cfg, frame):
        from mmdet3d.registry import DATASETS
        ds_cfg = cfg.test_dataloader.dataset
        ann = osp.join(ds_cfg.data_root, ds_cfg.ann_file)
        if not osp.exists(ann):
            raise FileNotFoundError(f'{ann} not found: convert the KITTI sample first '
                                    '(python tools/create_data.py kitti --root-path '
                                    'tests/data/kitti --out-dir work_dirs/demo_kitti/data)')
        dataset = DATASETS.build(ds_cfg)
        ids = [dataset.get_data_info(i)['sample_idx'] for i in range(len(dataset))]
        if int(frame) not in ids:
            raise KeyError(f'frame {frame} not in {ann} (frames: {ids})')
        self.frame = int(frame)
        self.sample = dataset[ids.index(self.frame)]
        load = [t for t in ds_cfg.pipeline if t.type == 'LoadPointsFromFile'][0]
        self.extra = []  # (frame id, (P, C) points) of the other frames, in id order
        for i, idx in enumerate(ids):
            if idx == self.frame:
                continue
            path = dataset.get_data_info(i)['lidar_points']['lidar_path']
            pts = np.fromfile(path, dtype=np.float32).reshape(-1, load.load_dim)
            self.extra.append((idx, torch.from_numpy(pts[:, :load.use_dim].copy())))

    def batch(self, model, extra_frames=0):
        """Voxelised batch of the frame, with the scans of ``extra_frames`` other frames added.

        Returns:
            tuple[dict, float]: the data preprocessor's output and its seconds.
        """
        sample = copy.copy(self.sample)
        inputs = dict(sample['inputs'])
        if extra_frames:
            inputs['points'] = torch.cat(
                [inputs['points']] + [p for _, p in self.extra[:extra_frames]])
        sample['inputs'] = inputs
        start = time.perf_counter()
        with torch.no_grad():
            data = model.data_preprocessor(pseudo_collate([sample]), training=False)
        return data, time.perf_counter() - start


def voxels_of(data):
    return int(data['inputs']['voxels']['coors'].shape[0])


def prepare(frame_data, model, n, merge):
    """Batch with N voxels if the frame (plus, with ``merge``, other frames) holds them."""
    extra = 0
    data, t = frame_data.batch(model, extra)
    while merge and voxels_of(data) < n and extra < len(frame_data.extra):
        extra += 1
        data, t = frame_data.batch(model, extra)
    frames = [frame_data.frame] + [i for i, _ in frame_data.extra[:extra]]
    return data, t, frames


class PartTimer:
    """Times the detector's parts by wrapping them (instance attributes and forward hooks)."""

    def __init__(self, model):
        self.times = {part: 0.0 for part in PARTS}
        self._handles, self._starts, self._wrapped = [], {}, []
        self._wrap(model, 'extract_img_feat', 'image_branch')
        self._wrap(model.rpn_head, 'predict', 'rpn')
        self._wrap(model.roi_head, 'predict', 'roi_head')
        self._hook(model.voxel_encoder, 'voxel_encoder')
        self._hook(model.middle_encoder, 'middle_encoder')
        me = model.middle_encoder
        laterals = list(me.lateral_convs.values()) if me.lateral_convs is not None else []
        for saf in [me.encoder_fusion, me.decoder_fusion] + laterals:
            if saf is not None:
                self._hook(saf, 'saf_fusion')
        self._hook(model.backbone, 'bev_backbone_neck')
        if model.with_neck:
            self._hook(model.neck, 'bev_backbone_neck')

    def _wrap(self, obj, name, part):
        method = getattr(obj, name)

        @functools.wraps(method)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.times[part] += time.perf_counter() - start

        setattr(obj, name, timed)
        self._wrapped.append((obj, name))

    def _hook(self, module, part):
        key = id(module)

        def pre(mod, args):
            self._starts[key] = time.perf_counter()

        def post(mod, args, out):
            self.times[part] += time.perf_counter() - self._starts.pop(key)

        self._handles += [module.register_forward_pre_hook(pre),
                          module.register_forward_hook(post)]

    def reset(self):
        self.times = {part: 0.0 for part in PARTS}

    def remove(self):
        for handle in self._handles:
            handle.remove()
        for obj, name in self._wrapped:
            delattr(obj, name)  # back to the class's method


def _reset_peak_rss():
    """Reset VmHWM to the current RSS; returns VmRSS in bytes, or None where unsupported."""
    try:
        return reset_peak_rss()
    except OSError:
        return None


def rule_book_pairs(module, out):
    """Input/output pairs a spconv conv call gathers, from its rule book.

    ``indice_dict[indice_key].indice_pair_num`` (K,) holds the pairs per kernel offset. For
    submanifold convs spconv 2.x (Native) stores the centre offset as 0 (it is one GEMM over all
    N voxels) and, the rule book being symmetric, only the offsets before the centre (each used
    in both directions); both are added back here. Inverse convs reuse the strided conv's pairs.
    """
    pair_num = out.indice_dict[module.indice_key].indice_pair_num.view(-1).long()
    if not module.subm:
        return int(pair_num.sum())
    centre = pair_num.numel() // 2
    n_out = int(out.features.shape[0])
    if int(pair_num[centre]) == 0 and int(pair_num[centre + 1:].sum()) == 0:
        return 2 * int(pair_num.sum()) + n_out  # half rule book + centre
    if int(pair_num[centre]) == 0:
        return int(pair_num.sum()) + n_out
    return int(pair_num.sum())


def count_flops(model, data):
    """FLOPs of one predict: FlopCounterMode for dense ops, rule books for sparse convs.

    spconv 2.3.6's CPU Native path runs its GEMMs with ``torch.mm`` from Python (its
    ``TorchSpconvMatmul``), which the counter does see; its CUDA implicit-GEMM kernels are not
    seen. So the counter's FLOPs inside every spconv conv call are measured (the counter's total
    before and after the call) and replaced by the rule-book count
    ``2 * pairs * C_in * C_out``; both are reported so they can be compared.
    """
    from spconv.pytorch.conv import SparseConvolution
    counter = FlopCounterMode(display=False)
    sparse, starts = [], {}

    def pre(module, args):
        starts[id(module)] = counter.get_total_flops()

    def post(module, args, out):
        pairs = rule_book_pairs(module, out)
        sparse.append(dict(indice_key=module.indice_key, subm=bool(module.subm),
                           inverse=bool(module.inverse), pairs=pairs,
                           c_in=module.in_channels, c_out=module.out_channels,
                           flops=2 * pairs * module.in_channels * module.out_channels,
                           counter_flops=counter.get_total_flops() - starts.pop(id(module))))

    sdpa_calls = []
    sdpa = F.scaled_dot_product_attention

    def counted_sdpa(query, key, value, *args, **kwargs):
        before = counter.get_total_flops()
        out = sdpa(query, key, value, *args, **kwargs)
        if counter.get_total_flops() == before:  # torch's counter has no CPU SDPA formula
            sdpa_calls.append(2 * query.shape[:-1].numel() * key.shape[-2]
                              * (query.shape[-1] + value.shape[-1]))
        return out

    handles = []
    for name, module in model.named_modules():
        if isinstance(module, SparseConvolution):
            if module.indice_key is None:
                raise ValueError(f'{name}: a spconv conv without indice_key cannot be counted '
                                 'from its rule book')
            handles += [module.register_forward_pre_hook(pre),
                        module.register_forward_hook(post)]
    F.scaled_dot_product_attention = counted_sdpa
    try:
        with torch.no_grad(), counter:
            model.predict(data['inputs'], data['data_samples'])
    finally:
        F.scaled_dot_product_attention = sdpa
        for handle in handles:
            handle.remove()
    # the counter names modules from the outermost one called through __call__: the parts
    # (predict/extract_feat call them directly) appear under their class names
    counts = counter.get_flop_counts()
    me = model.middle_encoder
    part_modules = dict(
        image_branch=[model.img_backbone, model.img_neck], voxel_encoder=[model.voxel_encoder],
        middle_encoder=[me], bev_backbone_neck=[model.backbone, getattr(model, 'neck', None)],
        rpn=[model.rpn_head],
        roi_head=[model.roi_head.bbox_roi_extractor, model.roi_head.bbox_head])
    per_part = {part: sum(sum(counts.get(type(m).__name__, {}).values())
                          for m in mods if m is not None) / 1e9
                for part, mods in part_modules.items()}
    saf_names = ['encoder_fusion', 'decoder_fusion'] + [
        f'lateral_convs.{key}' for key in (me.lateral_convs or {})]
    per_part['saf_fusion'] = sum(
        sum(counts.get(f'{type(me).__name__}.{name}', {}).values())
        for name in saf_names) / 1e9
    total_counter = counter.get_total_flops()
    sparse_counter = sum(s['counter_flops'] for s in sparse)
    sparse_rule_book = sum(s['flops'] for s in sparse)
    dense = total_counter - sparse_counter + sum(sdpa_calls)
    return dict(
        total_gflops=(dense + sparse_rule_book) / 1e9,
        dense_gflops=dense / 1e9,
        sparse_conv_gflops=sparse_rule_book / 1e9,
        sparse_conv_gflops_seen_by_counter=sparse_counter / 1e9,
        counter_total_gflops=total_counter / 1e9,
        sdpa_gflops_added=sum(sdpa_calls) / 1e9,
        sdpa_calls_added=len(sdpa_calls),
        counter_gflops_per_part=per_part,
        sparse_conv_calls=len(sparse),
        sparse_conv_layers=sparse)


def count_params(model):
    def n(module, trainable=False):
        if module is None:
            return 0
        return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)

    me = model.middle_encoder
    parts = dict(image_branch=n(model.img_backbone) + n(model.img_neck),
                 voxel_encoder=n(model.voxel_encoder), middle_encoder=n(me),
                 saf_fusion=n(me.encoder_fusion) + n(me.decoder_fusion) + n(me.lateral_convs),
                 bev_backbone_neck=n(model.backbone) + n(getattr(model, 'neck', None)),
                 rpn=n(model.rpn_head), roi_head=n(model.roi_head))
    return dict(total=n(model), trainable=n(model, trainable=True), per_part=parts,
                note='middle_encoder includes saf_fusion')


def run_row(model, data, args):
    """Warm-up, timed runs with part times and peak memory, and (optionally) the FLOP count."""
    timer = PartTimer(model)
    times, parts, peaks = [], {part: [] for part in PARTS}, []
    try:
        with torch.no_grad():
            for i in range(args.warmup + args.repeat):
                timer.reset()
                rss = _reset_peak_rss()
                start = time.perf_counter()
                results = model.predict(data['inputs'], data['data_samples'])
                elapsed = time.perf_counter() - start
                if i < args.warmup:
                    continue
                times.append(elapsed)
                for part in PARTS:
                    parts[part].append(timer.times[part])
                if rss is not None:
                    peaks.append((status_bytes('VmHWM') - rss) / 2**20)
    finally:
        timer.remove()
    row = dict(
        latency_s=dict(median=statistics.median(times), best=min(times), runs=times),
        parts_s={part: statistics.median(v) for part, v in parts.items()},
        parts_runs_s=parts,
        peak_mem_mib=max(peaks) if peaks else None,
        num_detections=int(len(results[0].pred_instances_3d.scores_3d)))
    if not args.no_flops:
        row['flops'] = count_flops(model, data)
    return row


def write_report(path, report):
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(report, f, indent=2)


def benchmark(args, argv):
    """Rows for every size and fusion mode, the report rewritten to ``args.out`` after each.

    Returns:
        list[dict]: the rows.
    """
    cfg = load_config(args.config, args.data_root, args.ann_file, args.pts_prefix)
    init_default_scope('mmdet3d')
    default_mode = cfg.model.middle_encoder.fusion.layer_cfg.lfm_cfg.get('mode', 'latent') \
        if cfg.model.middle_encoder.get('fusion') else None
    frame_data = FrameData(cfg, args.frame)
    jobs = [(n, None) for n in sorted(args.sizes)] + \
        [(args.mode_size, mode) for mode in args.lfm_modes]
    rows, params = [], {}
    load_start = os.getloadavg()
    for n, mode in jobs:
        model = build_model(cfg, n, mode)
        data, t_vox, frames = prepare(frame_data, model, n, not args.no_merge)
        actual = voxels_of(data)
        row = dict(n_cap=n, n_voxels=actual, reached=actual >= n, frames=frames,
                   points=int(data['inputs']['points'][0].shape[0]),
                   lfm_mode=mode or default_mode, ablation_row=mode is not None,
                   voxelization_s=t_vox)
        row.update(run_row(model, data, args))
        key = mode or default_mode
        if key not in params:
            params[key] = count_params(model)
        rows.append(row)
        write_report(args.out, make_report(args, argv, frame_data, params, rows, load_start,
                                           complete=len(rows) == len(jobs)))
        print(f'N cap {n} ({row["lfm_mode"]}): {actual} voxels from frames {frames}, '
              f'latency median {row["latency_s"]["median"]:.3f} s, parts '
              + ', '.join(f'{k} {v:.3f}' for k, v in row['parts_s'].items())
              + f', peak {row["peak_mem_mib"]} MiB'
              + (f', GFLOPs {row["flops"]["total_gflops"]:.1f} (sparse conv '
                 f'{row["flops"]["sparse_conv_gflops"]:.1f})' if 'flops' in row else ''),
              flush=True)
        del model
    return rows


def make_report(args, argv, frame_data, params, rows, load_start, complete):
    img = frame_data.sample['inputs']['img']
    return dict(
        complete=complete,
        config=args.config,
        command='python tools/analysis_tools/benchmark_sslfusion.py ' + ' '.join(argv),
        input=dict(frame=args.frame, data_root=args.data_root, pts_prefix=args.pts_prefix,
                   image_hw=list(img.shape[-2:]), batch=1,
                   voxel_cap='data_preprocessor.voxel_layer.max_voxels = (N, N); hard '
                             'voxelisation keeps the first N non-empty voxels in point order',
                   merging=None if args.no_merge else
                   "where the frame's scan holds fewer than N voxels, the scans of the sample's "
                   'other frames (real camera-view KITTI scans, each in its own LiDAR frame) are '
                   'appended in frame order until N is reached or none is left; the image and '
                   'calibration stay those of the frame'),
        mode='model.predict, eval(), torch.no_grad, float32, random weights',
        timing=dict(repeat=args.repeat, warmup=args.warmup,
                    latency='median / best of the timed runs of model.predict (the data '
                            'preprocessor, i.e. voxelisation, timed apart: voxelization_s)',
                    parts='medians; saf_fusion is part of middle_encoder; rpn = '
                          'rpn_head.predict incl. proposal NMS; roi_head = roi_head.predict'),
        memory_method='peak RSS increase: VmHWM reset via /proc/self/clear_refs before each '
                      'timed predict, minus VmRSS at that moment, largest over the timed runs; '
                      'in the benchmark process after the warm-up, rows in increasing N',
        flops_method='FLOPs = 2 x multiply-adds (no bias, BN, elementwise). total = dense + '
                     'sparse_conv. dense: torch FlopCounterMode over one predict (conv, matmul) '
                     'minus what it saw inside spconv conv calls. sparse_conv: per spconv conv '
                     'call 2 * pairs * C_in * C_out, pairs from the rule book in the output\'s '
                     'indice_dict[indice_key].indice_pair_num (submanifold: 2 * sum + N, '
                     'half rule book plus centre). On CPU spconv Native runs torch.mm, so the '
                     'counter also sees the sparse convs: sparse_conv_gflops_seen_by_counter '
                     'is the check. SDPA calls the counter misses (CPU kernel, attention mode) '
                     'are added to dense as 2 * B h Lq Lk (d_qk + d_v): sdpa_gflops_added',
        params=params,
        rows=rows,
        env=dict(torch=torch.__version__, python=platform.python_version(),
                 machine=platform.machine(), processor=platform.processor(),
                 cpu_count=os.cpu_count(), threads=torch.get_num_threads(),
                 load_average_start=load_start, load_average_end=os.getloadavg(),
                 device='cpu'),
    )


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    benchmark(args, argv)
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
