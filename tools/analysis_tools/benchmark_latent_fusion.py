"""Benchmark SSLFusion's LFM (latent cross-modal fusion) against full QKV cross-attention on CPU.

Forward only, ``eval()`` and ``torch.no_grad``, float32, one sample of N voxels (B = 1), the
whole ``mmfusion.models.fusion.latent_fusion.LatentCrossModalFusion`` module (shared MLP,
interaction, gates, output layer) in each mode:

- ``latent``: the LFM, K latent nodes per modality (default 128, official), as it runs in eval
  mode: in chunks of ``--chunk-size`` voxels (the module's default 8192).
- ``latent_unchunked``: the same without chunking (the training-mode code path, all voxels at
  once), to show what the chunking changes.
- ``attention``: the paper's comparison, the same module with the latent graph replaced by
  multi-head QKV cross-attention of every voxel over the image tokens of all N voxels
  (``F.scaled_dot_product_attention``; on CPU torch picks its fused, memory-efficient kernel, so
  the (h, N, N) matrix is never stored). Above ``--attention-full-max`` voxels it is timed on
  ``--attention-queries`` query voxels against all N keys and extrapolated: the keys' part
  (shared MLP of the N image tokens, K/V projections) is timed in full, the per-query part
  (shared MLP, Q projection, attention over N keys, output projection, gates, output layer)
  is timed on the subset and scaled by N / queries (rows of attention are independent, so this
  is linear in the number of queries by construction). The size just below the threshold is
  timed both ways to check the extrapolation.
- ``concat``: concatenation + linear, the floor of any fusion.

Channels: C = 64, the width of the second fusion stage of the official SSLFusion backbone
(``mid_channels = [32, 64, 128, 128]`` for voxel strides 1, 2, 4, 8).

Timing, made robust to a shared machine whose load changes during the run: after one warm-up,
phase 1 runs ``--repeat`` rounds of every method but attention, each round over all sizes (about
a second), so that the growth with N compares runs under the same load (the latent 80k / 10k
ratio is also given per round); phase 2 runs, per size, ``--repeat`` rounds of one attention
forward followed by one latent forward, and reports the attention / latent ratio of each round
(median, min, max) besides the best / median times.
Peak memory: increase of the process's peak resident set size (``VmHWM``, reset through
/proc/self/clear_refs just before the forward) over the resident size at that moment, in a fresh
subprocess per method and size (Linux only; ``tracemalloc`` misses torch's CPU allocations). For
extrapolated sizes it is the peak of the timed part. The memory a plain (unfused) attention
would need for its (h, N, N) float32 matrix is reported as computed, not measured.

On a machine shared with other jobs use ``--threads 1``: with two OpenMP threads every small op
waits for a descheduled thread and the timings lose all meaning (measured: a 1000-voxel concat
took 250 ms with 2 threads at load average 12, 0.4 ms with 1).

Example::

    python tools/analysis_tools/benchmark_latent_fusion.py --repeat 5 --threads 1 \\
        --out docs/benchmarks/latent_fusion_cpu-1thread-epyc.json
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
import torch.nn.functional as F

from mmfusion.models.fusion.latent_fusion import LatentCrossModalFusion
from mmfusion.utils.process_memory import reset_peak_rss, status_bytes

METHODS = ('latent', 'latent_unchunked', 'attention', 'concat')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', type=int, nargs='+',
                        default=[5000, 10000, 20000, 40000, 80000], help='N voxels')
    parser.add_argument('--channels', type=int, default=64, help='C')
    parser.add_argument('--latents', type=int, default=128, help='K latent nodes per modality')
    parser.add_argument('--heads', type=int, default=8, help='heads of the attention mode')
    parser.add_argument('--repeat', type=int, default=5, help='timed runs per size and mode')
    parser.add_argument('--methods', nargs='+', choices=METHODS, default=list(METHODS))
    parser.add_argument('--chunk-size', type=int, default=8192, help='chunk of the latent method')
    parser.add_argument('--attention-full-max', type=int, default=20000,
                        help='largest N at which attention is timed in full')
    parser.add_argument('--attention-queries', type=int, default=4096,
                        help='query voxels timed above --attention-full-max')
    parser.add_argument('--no-memory', action='store_true', help='skip the memory subprocesses')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='work_dirs/benchmarks/latent_fusion_cpu.json')
    parser.add_argument('--child', nargs=2, metavar=('METHOD', 'N'), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def make_module(args, method):
    torch.manual_seed(args.seed)
    mode = 'latent' if method.startswith('latent') else method
    chunk_size = args.chunk_size if method == 'latent' else None
    return LatentCrossModalFusion(args.channels, mode=mode, num_latents=args.latents,
                                  num_heads=args.heads, chunk_size=chunk_size).eval()


def make_inputs(args, n):
    gen = torch.Generator().manual_seed(args.seed)
    pts = torch.randn(n, args.channels, generator=gen)
    img = torch.randn(n, args.channels, generator=gen)
    return pts, img, torch.zeros(n, dtype=torch.long)


def attention_partial(module, pts, img, num_queries):
    """The attention-mode forward for the first ``num_queries`` voxels over all N image tokens.

    Returns:
        tuple[float, float, Tensor]: seconds of the keys' part (all N), seconds of the queries'
        part (``num_queries``), and the output (num_queries, C_out).
    """
    h, c = module.num_heads, module.channels
    n = img.shape[0]
    t0 = time.perf_counter()
    s_img = module.shared_mlp(img)
    k = module.k_proj(s_img).view(1, n, h, c // h).transpose(1, 2)
    v = module.v_proj(s_img).view(1, n, h, c // h).transpose(1, 2)
    t1 = time.perf_counter()
    x = pts[:num_queries]
    s_pts = module.shared_mlp(x)
    q = module.q_proj(s_pts).view(1, -1, h, c // h).transpose(1, 2)
    att = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(-1, c)
    g_pts = s_pts + module.out_proj(att)
    summed = s_pts + s_img[:num_queries]
    fused = g_pts * module.gate_pts(summed) + x + \
        s_img[:num_queries] * module.gate_img(summed) + img[:num_queries]
    out = module.fuse(F.relu(fused))
    return t1 - t0, time.perf_counter() - t1, out


def run_once(args, module, method, pts, img, idx):
    """One timed forward; returns (seconds for all N voxels, extrapolation note or None)."""
    n = pts.shape[0]
    if method == 'attention' and n > args.attention_full_max:
        nq = min(args.attention_queries, n)
        t_keys, t_queries, _ = attention_partial(module, pts, img, nq)
        return t_keys + t_queries * n / nq, (
            f'timed the keys part for all {n} voxels and {nq} of {n} queries; '
            f'total = t_keys + t_queries x {n / nq:.2f}')
    t = time.perf_counter()
    module(pts, img, idx, batch_size=1)
    return time.perf_counter() - t, None


def child_memory(args):
    """In a fresh process: peak RSS increase (MiB) of one forward of ``args.child``."""
    method, n = args.child[0], int(args.child[1])
    module = make_module(args, method)
    pts, img, idx = make_inputs(args, n)
    with torch.no_grad():
        run_once(args, module, method, pts[:256], img[:256], idx[:256])  # warm-up
        before = reset_peak_rss()
        run_once(args, module, method, pts, img, idx)
        peak = status_bytes('VmHWM')
    print(json.dumps(dict(peak_mib=max(peak - before, 0) / 2**20)))


def measure_memory(argv, method, n):
    cmd = [sys.executable, osp.abspath(__file__)] + argv + ['--child', method, str(n)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])['peak_mib']


def macs(n, c, k, h):
    """Multiply-accumulates of the interaction parts (the shared MLP, gates and output layer
    are the same O(N C^2) in all modes)."""
    return dict(
        latent=4 * n * c * k + 2 * n * k * c + 2 * n * k * c + (2 * k)**2 * c * 2,
        latent_formula='4 N C K (v2l, l2v projections) + 2 N K C (voxels -> nodes) + '
                       '2 N K C (nodes -> voxels) + 2 (2K)^2 C (latent graph)',
        attention=4 * n * c * c + 2 * n * n * c,
        attention_formula='4 N C^2 (Q, K, V, out projections) + 2 N^2 C (Q K^T, A V)',
    )


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        child_memory(args)
        return
    load_start = os.getloadavg()
    results = {method: {} for method in args.methods}
    checks = {}
    modules = {method: make_module(args, method) for method in args.methods}
    inputs = {n: make_inputs(args, n) for n in args.sizes}
    cheap = [method for method in args.methods if method != 'attention']
    times = {method: {n: [] for n in args.sizes} for method in args.methods}
    notes, paired, scaling = {}, {}, []
    with torch.no_grad():
        for method, module in modules.items():  # warm-up
            pts, img, idx = inputs[args.sizes[0]]
            run_once(args, module, method, pts[:512], img[:512], idx[:512])
        # phase 1, every method but attention: each round runs all sizes (about a second),
        # so the growth with N is measured under the same load
        for _ in range(args.repeat):
            for n in args.sizes:
                for method in cheap:
                    t, notes[(method, n)] = run_once(args, modules[method], method, *inputs[n])
                    times[method][n].append(t)
            if 'latent' in cheap and 10000 in args.sizes and 80000 in args.sizes:
                scaling.append(times['latent'][80000][-1] / times['latent'][10000][-1])
        # phase 2, attention: each round one attention and one latent forward at the same N
        if 'attention' in modules:
            for n in args.sizes:
                ratios = []
                for _ in range(args.repeat):
                    t, notes[('attention', n)] = run_once(args, modules['attention'],
                                                          'attention', *inputs[n])
                    times['attention'][n].append(t)
                    if 'latent' in modules:
                        ratios.append(t / run_once(args, modules['latent'], 'latent',
                                                   *inputs[n])[0])
                if ratios:
                    paired[n] = dict(median=statistics.median(ratios), min=min(ratios),
                                     max=max(ratios), per_round=ratios)
        for method in args.methods:
            for n in args.sizes:
                ts, note = times[method][n], notes[(method, n)]
                results[method][n] = dict(
                    best_s=min(ts), median_s=statistics.median(ts), times_s=ts,
                    extrapolated=note is not None, extrapolation=note)
                print(f'{method} N={n}: best {min(ts):.4f} s, median '
                      f'{statistics.median(ts):.4f} s{" (extrapolated)" if note else ""}',
                      flush=True)
        full = [n for n in args.sizes if n <= args.attention_full_max]
        if 'attention' in modules and full and \
                any(n > args.attention_full_max for n in args.sizes):
            # extrapolation check at the largest fully timed size
            n, module = max(full), modules['attention']
            pts, img, idx = make_inputs(args, n)
            nq = min(args.attention_queries, n)
            ext, fulls = [], []
            for _ in range(args.repeat):
                t_keys, t_queries, out = attention_partial(module, pts, img, nq)
                ext.append(t_keys + t_queries * n / nq)
                fulls.append(run_once(args, module, 'attention', pts, img, idx)[0])
            ref = module(pts, img, idx, batch_size=1)[:nq]
            checks['attention_extrapolation'] = dict(
                N=n, queries=nq, extrapolated_best_s=min(ext),
                extrapolated_median_s=statistics.median(ext), full_best_s=min(fulls),
                full_median_s=statistics.median(fulls),
                ratio_median=statistics.median([e / f for e, f in zip(ext, fulls)]),
                max_abs_diff_partial_vs_module=(out - ref).abs().max().item())
            print(f'extrapolation check: {checks["attention_extrapolation"]}', flush=True)
    if not args.no_memory:
        child_argv = [a for a in argv if a != '--no-memory']
        for method in args.methods:
            for n in args.sizes:
                results[method][n]['peak_mem_mib'] = measure_memory(child_argv, method, n)
                print(f'{method} N={n}: peak {results[method][n]["peak_mem_mib"]:.1f} MiB',
                      flush=True)

    summary = {}
    sizes = args.sizes
    if 'latent' in results:
        lat = results['latent']
        if 10000 in lat and 80000 in lat:
            summary['latent_time_ratio_80k_over_10k_best'] = \
                lat[80000]['best_s'] / lat[10000]['best_s']
            summary['latent_time_ratio_80k_over_10k_median'] = \
                lat[80000]['median_s'] / lat[10000]['median_s']
            summary['latent_time_ratio_80k_over_10k_per_round'] = dict(
                median=statistics.median(scaling), min=min(scaling), max=max(scaling),
                per_round=scaling)
        if 'latent_unchunked' in results and 80000 in lat and 10000 in lat:
            unc = results['latent_unchunked']
            summary['latent_unchunked_time_ratio_80k_over_10k_best'] = \
                unc[80000]['best_s'] / unc[10000]['best_s']
        if paired:
            # ratios of the same round only: best / median times of attention (phase 2) and
            # latent (phase 1) come from different moments of a shared machine
            summary['attention_over_latent_paired_rounds'] = paired
    report = dict(
        module='mmfusion.models.fusion.latent_fusion.LatentCrossModalFusion',
        command='python tools/analysis_tools/benchmark_latent_fusion.py ' + ' '.join(argv),
        config=dict(sizes=sizes, batch=1, channels=args.channels, latents=args.latents,
                    heads=args.heads, repeat=args.repeat, chunk_size=args.chunk_size,
                    attention_full_max=args.attention_full_max,
                    attention_queries=args.attention_queries,
                    mode='forward, eval(), torch.no_grad, float32, whole module',
                    threads=torch.get_num_threads()),
        targets=dict(latent_time_ratio_80k_over_10k='<= 10',
                     attention_over_latent_at_20k='>= 20'),
        summary=summary,
        checks=checks,
        results=results,
        memory_method='peak RSS increase: VmHWM reset via /proc/self/clear_refs before the '
                      'forward, minus VmRSS at that moment; one run per method and size in a fresh '
                      'subprocess after a warm-up',
        plain_attention_matrix_mib={n: args.heads * n * n * 4 / 2**20 for n in sizes},
        macs={n: macs(n, args.channels, args.latents, args.heads) for n in sizes},
        env=dict(torch=torch.__version__, python=platform.python_version(),
                 machine=platform.machine(), processor=platform.processor(),
                 cpu_count=os.cpu_count(), load_average_start=load_start,
                 load_average_end=os.getloadavg()),
    )
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=2)
    print(json.dumps(summary, indent=2))
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
