"""Benchmark the Fusion-Mamba block (FMB) against transformer cross-attention fusion on CPU.

At a 640 x 640 input the two-stream YOLOv5-l backbone of Fusion-Mamba fuses P3 / P4 / P5 maps of
80 x 80 / 40 x 40 / 20 x 20 pixels with 256 / 512 / 1024 channels (official
``yolov5l-fusionmamba.yaml``). For each level and batch 1 this script measures, forward under
``torch.no_grad`` in eval mode:

- ``fmb``: :class:`mmfusion.models.fusion.FusionMambaBlock` as configured in the paper (SSCS with
  one VSS block per stream, N = 8 chained DSSF blocks, d_state 16, expand 2), selective scans on
  the PyTorch path of :func:`mmfusion.ops.selective_scan`;
- ``cross_attention``: :class:`CrossAttentionFusion` below, the transformer fusion the paper's
  speed claim is about: per layer, each modality queries the other with full (global)
  multi-head attention over all H * W tokens, then an FFN, both pre-norm residual, with as many
  layers as the FMB has DSSF blocks (8, also the depth of CFT's fusion transformer).

Latency: wall clock, best and median of ``--repeat`` runs after one warm-up, and the process's CPU
time over the same runs (``time.process_time``; with ``--threads 1`` the compute itself, much
less sensitive than wall clock to other jobs on a shared machine). Peak memory: the
process's resident-set high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``) during
one forward, minus the resident set before it (weights and inputs excluded). For the FMB, the CPU
time spent inside the selective scans during one more forward (``scan_cpu_s``); the rest is the
linear projections, depth-wise convs, norms and the cross-scan/merge copies. Each (block, level)
runs in a fresh subprocess, so one measurement's freed-but-cached memory does not hide the next
one's. Parameter counts are reported too. ``--max-seconds`` skips the remaining repeats of a
configuration whose first timed run took longer (its figure is then one run).

Example::

    python tools/analysis_tools/benchmark_fusion_mamba_block.py --repeat 3 \\
        --out docs/benchmarks/fusion_mamba_block_cpu-2core-epyc.json
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import time

import torch
from torch import Tensor, nn

from mmfusion.utils.process_memory import reset_peak_rss, status_bytes

LEVELS = dict(P3=(256, 80, 80), P4=(512, 40, 40), P5=(1024, 20, 20))
BLOCKS = ('fmb', 'cross_attention')


class CrossAttentionLayer(nn.Module):
    """One bidirectional cross-attention fusion layer (pre-norm transformer)::

        r = x_r + MHA_r(q=LN(x_r), k=v=LN(x_i));   i = x_i + MHA_i(q=LN(x_i), k=v=LN(x_r))
        r = r + FFN_r(LN(r));                      i = i + FFN_i(LN(i))

    MHA: ``nn.MultiheadAttention`` over all tokens (batch_first, ``need_weights=False`` so torch
    takes its fused scaled-dot-product path); FFN: Linear C -> 4C, GELU, Linear 4C -> C.
    Tokens (B, L, C).
    """

    def __init__(self, channels: int, num_heads: int = 8, mlp_ratio: int = 4):
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(channels) for _ in range(4))
        self.attn = nn.ModuleList(
            nn.MultiheadAttention(channels, num_heads, batch_first=True) for _ in range(2))
        self.ffn = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, mlp_ratio * channels),
                          nn.GELU(), nn.Linear(mlp_ratio * channels, channels))
            for _ in range(2))

    def forward(self, x_r: Tensor, x_i: Tensor):
        q_r, q_i = self.norms[0](x_r), self.norms[1](x_i)
        kv_r, kv_i = self.norms[2](x_r), self.norms[3](x_i)
        r = x_r + self.attn[0](q_r, kv_i, kv_i, need_weights=False)[0]
        i = x_i + self.attn[1](q_i, kv_r, kv_r, need_weights=False)[0]
        return r + self.ffn[0](r), i + self.ffn[1](i)


class CrossAttentionFusion(nn.Module):
    """Transformer cross-attention fusion of two (B, C, H, W) maps: ``num_layers`` chained
    :class:`CrossAttentionLayer` on the flattened tokens; returns (B, C, H, W) each.
    (CFT, Qingyun et al. 2021, attends over the concatenated tokens of both modalities after
    pooling the maps to 8 x 8; here the attention is global at full resolution, as a fusion
    block of the same role and resolution as the FMB.)"""

    def __init__(self, channels: int, num_layers: int = 8, num_heads: int = 8):
        super().__init__()
        self.layers = nn.ModuleList(
            CrossAttentionLayer(channels, num_heads) for _ in range(num_layers))

    def forward(self, x_rgb: Tensor, x_ir: Tensor):
        batch, channels, height, width = x_rgb.shape
        r, i = x_rgb.flatten(2).transpose(1, 2), x_ir.flatten(2).transpose(1, 2)
        for layer in self.layers:
            r, i = layer(r, i)
        shape = (batch, channels, height, width)
        return (r.transpose(1, 2).reshape(shape), i.transpose(1, 2).reshape(shape))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--levels', nargs='+', choices=sorted(LEVELS), default=sorted(LEVELS))
    parser.add_argument('--blocks', nargs='+', choices=BLOCKS, default=list(BLOCKS))
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--num-dssf-blocks', type=int, default=8,
                        help='N of the FMB, also the layers of the cross-attention baseline')
    parser.add_argument('--heads', type=int, default=8, help='heads of the baseline')
    parser.add_argument('--repeat', type=int, default=3, help='timed runs per configuration')
    parser.add_argument('--max-seconds', type=float, default=120.,
                        help='stop repeating a configuration after a first run this long')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='work_dirs/benchmarks/fusion_mamba_block_cpu.json')
    parser.add_argument('--worker', nargs=2, metavar=('BLOCK', 'LEVEL'), help=argparse.SUPPRESS)
    return parser.parse_args()


def build(block: str, channels: int, args) -> nn.Module:
    if block == 'fmb':
        from mmfusion.models.fusion.fusion_mamba_block import FusionMambaBlock
        return FusionMambaBlock(channels, num_dssf_blocks=args.num_dssf_blocks)
    return CrossAttentionFusion(channels, num_layers=args.num_dssf_blocks, num_heads=args.heads)


def scan_cpu_time(model: nn.Module, inputs) -> float:
    """CPU time spent inside the selective scans during one more forward of an FMB."""
    import importlib
    ss2d = importlib.import_module('mmfusion.models.layers.ss2d')
    scan, spent = ss2d.selective_scan, [0.]

    def timed(*args, **kwargs):
        start = time.process_time()
        out = scan(*args, **kwargs)
        spent[0] += time.process_time() - start
        return out

    ss2d.selective_scan = timed
    try:
        model(*inputs)
    finally:
        ss2d.selective_scan = scan
    return spent[0]


def measure(block: str, level: str, args) -> dict:
    """One (block, level) in this process: parameters, peak memory of one forward, latency."""
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    channels, height, width = LEVELS[level]
    model = build(block, channels, args).eval()
    gen = torch.Generator().manual_seed(args.seed)
    inputs = [torch.randn(args.batch, channels, height, width, generator=gen) for _ in range(2)]
    result = dict(block=block, level=level, channels=channels, height=height, width=width,
                  tokens=height * width,
                  params_M=round(sum(p.numel() for p in model.parameters()) / 1e6, 3))
    with torch.no_grad():
        rss_before = reset_peak_rss()
        start = time.perf_counter()
        out = model(*inputs)  # also the warm-up run
        first = time.perf_counter() - start
        result['peak_memory_MiB'] = round((status_bytes('VmHWM') - rss_before) / 2**20, 1)
        assert all(torch.isfinite(o).all() for o in out)
        del out
        times, cpu_times = [], []
        for _ in range(args.repeat):
            start, cpu_start = time.perf_counter(), time.process_time()
            model(*inputs)
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
            if times[0] > args.max_seconds:
                break
        if block == 'fmb':
            result['scan_cpu_s'] = round(scan_cpu_time(model, inputs), 3)
    result.update(first_run_s=round(first, 3), runs_s=[round(t, 3) for t in times],
                  best_s=round(min(times), 3), median_s=round(statistics.median(times), 3),
                  cpu_runs_s=[round(t, 3) for t in cpu_times],
                  best_cpu_s=round(min(cpu_times), 3),
                  median_cpu_s=round(statistics.median(cpu_times), 3),
                  torch_threads=torch.get_num_threads())
    return result


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
                torch_threads=torch.get_num_threads(), python=platform.python_version(),
                platform=platform.platform(),
                load_average_at_start=[round(x, 2) for x in os.getloadavg()])


def main():
    args = parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker[0], args.worker[1], args)))
        return
    passthrough = ['--batch', str(args.batch), '--num-dssf-blocks', str(args.num_dssf_blocks),
                   '--heads', str(args.heads), '--repeat', str(args.repeat),
                   '--max-seconds', str(args.max_seconds), '--seed', str(args.seed)]
    if args.threads:
        passthrough += ['--threads', str(args.threads)]
    report = dict(
        what=('Fusion-Mamba block (SSCS + N DSSF, PyTorch selective scan) vs bidirectional '
              'full cross-attention + FFN fusion with N layers, forward, batch '
              f'{args.batch}, 640x640 input levels'),
        baseline=CrossAttentionFusion.__doc__.split('\n')[0] + ' ' +
        CrossAttentionLayer.__doc__.split('\n')[0],
        timing=('wall clock (best_s, median_s) and process CPU time (best_cpu_s, median_cpu_s) '
                'of --repeat runs after one warm-up (first_run_s); each configuration in a '
                'fresh subprocess; torch.no_grad, eval mode'),
        memory='VmHWM during the first forward minus VmRSS before it (weights/inputs excluded)',
        command=' '.join([osp.basename(sys.executable)] + sys.argv),
        note=('the machine is shared with other jobs (see load averages); timings are upper '
              'bounds of what the code does on an idle machine'),
        device=cpu_description(),
        results=[])
    for level in args.levels:
        for block in args.blocks:
            cmd = [sys.executable, osp.abspath(__file__), '--worker', block, level] + passthrough
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                entry = dict(block=block, level=level, error=proc.stderr[-2000:])
            else:
                entry = json.loads(proc.stdout.strip().splitlines()[-1])
            entry['load_average_after'] = [round(x, 2) for x in os.getloadavg()]
            print(json.dumps(entry))
            report['results'].append(entry)
    by_key = {(r['block'], r['level']): r for r in report['results'] if 'best_s' in r}
    levels = [level for level in args.levels
              if ('fmb', level) in by_key and ('cross_attention', level) in by_key]
    for key in ('best_s', 'best_cpu_s'):
        report[f'speedup_fmb_over_cross_attention_{key[:-2]}'] = {
            level: round(by_key[('cross_attention', level)][key] / by_key[('fmb', level)][key], 2)
            for level in levels}
    report['load_average_at_end'] = [round(x, 2) for x in os.getloadavg()]
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=2)
    print(json.dumps({k: v for k, v in report.items() if k.startswith('speedup')}))
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
