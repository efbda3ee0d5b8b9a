"""Benchmark a paired (RGB + infrared) detector: latency, parameters and FLOPs of the whole model.

Builds the detector of CONFIG with random weights (eval mode) and times ``model.predict`` on one
random visible/infrared pair of ``--shape`` (already normalised, so the data preprocessor is not
timed): both backbone streams, the fusion blocks, neck, head decoding and NMS, under
``torch.no_grad``. Reports the best and the median of ``--repeat`` runs after ``--warmup`` runs.

Parameters: total and per part (the two backbone streams, the fusion blocks, neck, head).

FLOPs, two parts:

- ``matmul_conv_gflops``: counted by ``torch.utils.flop_counter.FlopCounterMode`` during one
  forward: convolutions, matrix products (linear layers, the scan's state contraction), one
  multiply-add = 2 FLOPs. It does not count elementwise operations.
- ``selective_scan_gflops``: the recurrence of every selective scan (Mamba's S6) in the forward,
  which the counter above misses because it is elementwise: ``8 * B * D * L * N`` per scan call
  (discretisation exp(delta A): multiply + exp; delta B u: 2 multiplies; state update
  h = a h + b: multiply + add; output C h: multiply + add), with the call's batch B, channels D
  (all scan directions), length L and state size N recorded by wrapping
  ``mmfusion.models.layers.ss2d.selective_scan``. The C-contraction is then counted in both parts
  when the PyTorch scan does it with a matrix product (a small overlap, stated in the report).

Training-step mode (``--train-step``): instead of the above, one training step of the model in
train mode, ``model.loss`` on the random pair with random ground-truth boxes, the summed losses'
backward (no optimizer step), float32; reports its time and the peak increase of the process's
resident memory (``VmHWM``, :mod:`mmfusion.utils.process_memory`) over the state after the model
was built, per run.

Shape shorthand: H, W input height and width in pixels.

Example::

    python tools/analysis_tools/benchmark_paired_detector.py \\
        projects/FusionMamba/configs/fusion-mamba_yolox-l_1xb8-200e_llvip.py --shape 640 640 \\
        --repeat 3 --out docs/benchmarks/fusion_mamba_yolox-l_llvip_cpu-2core-epyc.json
    python tools/analysis_tools/benchmark_paired_detector.py \\
        projects/FusionMamba/configs/fusion-mamba_yolox-l_1xb8-200e_llvip.py --train-step \\
        --repeat 1 --out docs/benchmarks/fusion_mamba_yolox-l_llvip_train-step_cpu-2core-epyc.json
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import sys
import time

import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from torch.utils.flop_counter import FlopCounterMode

from mmfusion.utils.process_memory import reset_peak_rss, status_bytes

SCAN_FLOPS_PER_ELEMENT = 8


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config of a paired detector')
    parser.add_argument('--shape', type=int, nargs=2, default=[640, 640], metavar=('H', 'W'),
                        help='input height and width in pixels (default 640 640)')
    parser.add_argument('--batch', type=int, default=1, help='pairs per forward (default 1)')
    parser.add_argument('--repeat', type=int, default=5, help='timed runs (default 5)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs first (default 1)')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    parser.add_argument('--no-flops', action='store_true', help='skip the FLOP count')
    parser.add_argument('--train-step', action='store_true',
                        help='time one training step (loss + backward) and its peak memory '
                        'instead of predict')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. model.backbone.fusion_cfg=None')
    parser.add_argument('--out', default=None, help='JSON report (default: print only)')
    return parser.parse_args(argv)


def build_inputs(model, batch, height, width, seed=0):
    """Random normalised pair (B, 3, H, W) x 2 and the data samples ``predict`` needs."""
    gen = torch.Generator().manual_seed(seed)
    inputs = dict(img=torch.randn(batch, 3, height, width, generator=gen),
                  img_ir=torch.randn(batch, 3, height, width, generator=gen))
    meta = dict(img_shape=(height, width), ori_shape=(height, width), pad_shape=(height, width),
                batch_input_shape=(height, width), scale_factor=(1., 1.))
    return inputs, [DetDataSample(metainfo=meta) for _ in range(batch)]


def add_random_boxes(samples, num_classes, boxes_per_image=5, seed=0):
    """Random ground-truth boxes (x1, y1, x2, y2 in pixels, at least 8 px wide) and labels."""
    gen = torch.Generator().manual_seed(seed)
    for sample in samples:
        height, width = sample.metainfo['img_shape']
        xy = torch.rand(boxes_per_image, 2, generator=gen) * torch.tensor([width, height]) * 0.8
        wh = 8 + torch.rand(boxes_per_image, 2, generator=gen) * torch.tensor([width, height]) * 0.2
        sample.gt_instances = InstanceData(
            bboxes=torch.cat([xy, xy + wh], dim=1),
            labels=torch.randint(num_classes, (boxes_per_image, ), generator=gen))
    return samples


def train_step(model, inputs, samples, repeat):
    """Time and peak resident-memory increase of ``repeat`` loss + backward steps."""
    model.train()
    runs = []
    for i in range(repeat):
        model.zero_grad(set_to_none=True)
        base = reset_peak_rss()
        start = time.perf_counter()
        losses = model.loss(inputs, samples)
        loss, _ = model.parse_losses(losses)
        loss.backward()
        elapsed = time.perf_counter() - start
        peak = status_bytes('VmHWM') - base
        runs.append(dict(time_s=round(elapsed, 2), peak_extra_mib=round(peak / 2**20),
                         loss=round(loss.item(), 4)))
        print(f'train step {i}: {elapsed:.1f} s, peak extra {peak / 2**20:.0f} MiB', flush=True)
    return runs


def count_params(model):
    """Parameter counts, total and per top-level part (streams and fusions split)."""
    def n(module):
        return sum(p.numel() for p in module.parameters()) if module is not None else 0
    parts = {}
    backbone = model.backbone
    for name in ('rgb_stream', 'ir_stream', 'fusions'):
        if hasattr(backbone, name):
            parts[f'backbone.{name}'] = n(getattr(backbone, name))
    if not parts:
        parts['backbone'] = n(backbone)
    parts['neck'] = n(getattr(model, 'neck', None))
    parts['bbox_head'] = n(getattr(model, 'bbox_head', None))
    return dict(total=n(model), **parts)


def count_flops(model, inputs, samples):
    """Matmul/conv FLOPs (FlopCounterMode) and selective-scan recurrence FLOPs of one forward."""
    import mmfusion.models.layers.ss2d as ss2d_module
    scan_calls = []
    original = ss2d_module.selective_scan

    def recording_scan(u, delta, A, B, C, *args, **kwargs):
        b, d, length = u.shape
        scan_calls.append((b, d, length, A.shape[-1]))
        return original(u, delta, A, B, C, *args, **kwargs)

    ss2d_module.selective_scan = recording_scan
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model.predict(inputs, samples)
    finally:
        ss2d_module.selective_scan = original
    scan_flops = sum(SCAN_FLOPS_PER_ELEMENT * b * d * length * n
                     for b, d, length, n in scan_calls)
    return dict(
        matmul_conv_gflops=counter.get_total_flops() / 1e9,
        selective_scan_gflops=scan_flops / 1e9,
        total_gflops=(counter.get_total_flops() + scan_flops) / 1e9,
        selective_scan_calls=len(scan_calls),
        selective_scan_shapes_bdln=sorted(set(scan_calls)),
        note='FLOPs = 2 x multiply-adds; matmul_conv from torch FlopCounterMode (no '
             'elementwise ops); selective_scan = 8 * B * D * L * N per scan call (its '
             'C-contraction, done by a batched matmul on the PyTorch path, is also in '
             'matmul_conv)')


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    height, width = args.shape
    inputs, samples = build_inputs(model, args.batch, height, width)
    if args.train_step:
        return report_train_step(args, argv, model, inputs, samples)

    times = []
    with torch.no_grad():
        for i in range(args.warmup + args.repeat):
            start = time.perf_counter()
            model.predict(inputs, samples)
            elapsed = time.perf_counter() - start
            if i >= args.warmup:
                times.append(elapsed)
            print(f'{"warm-up" if i < args.warmup else "run"} {i}: {elapsed:.3f} s', flush=True)
    report = dict(
        config=args.config,
        cfg_options=args.cfg_options,
        command='python ' + ' '.join([osp.relpath(__file__)]
                                     + (argv if argv is not None else sys.argv[1:])),
        input=dict(batch=args.batch, height=height, width=width,
                   what='random normalised visible + infrared pair'),
        mode='model.predict (backbones, fusion, neck, head, NMS), torch.no_grad, float32, '
             'random weights',
        latency_s=dict(best=min(times), median=statistics.median(times), runs=times,
                       warmup_runs=args.warmup),
        params=count_params(model),
        flops=None if args.no_flops else count_flops(model, inputs, samples),
        env=dict(torch=torch.__version__, python=platform.python_version(),
                 machine=platform.machine(), processor=platform.processor(),
                 cpu_count=os.cpu_count(), threads=torch.get_num_threads(),
                 load_average=os.getloadavg(), device='cpu'),
    )
    print(json.dumps(dict(latency_s=report['latency_s'], params_m=report['params']['total'] / 1e6,
                          flops=report['flops'] and report['flops']['total_gflops']), indent=2))
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=2)
        print(f'wrote {args.out}')
    return 0


def report_train_step(args, argv, model, inputs, samples):
    """The ``--train-step`` report (module docstring)."""
    add_random_boxes(samples, model.bbox_head.num_classes)
    resident = status_bytes('VmRSS')
    runs = train_step(model, inputs, samples, args.repeat)
    report = dict(
        config=args.config,
        cfg_options=args.cfg_options,
        command='python ' + ' '.join([osp.relpath(__file__)]
                                     + (argv if argv is not None else sys.argv[1:])),
        input=dict(batch=args.batch, height=args.shape[0], width=args.shape[1],
                   what='random normalised visible + infrared pair, 5 random boxes per image'),
        mode='one training step: model.loss + backward of the summed losses (no optimizer '
             'step), train mode, float32, random weights',
        resident_mib_after_build=round(resident / 2**20),
        runs=runs,
        params=count_params(model),
        env=dict(torch=torch.__version__, python=platform.python_version(),
                 machine=platform.machine(), processor=platform.processor(),
                 cpu_count=os.cpu_count(), threads=torch.get_num_threads(),
                 load_average=os.getloadavg(), device='cpu'),
    )
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=2)
        print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
