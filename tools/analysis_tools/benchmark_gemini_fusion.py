"""Benchmark GeminiFusion's vectorised attention against official-style loops and cross-attention.

Forward only, under ``torch.no_grad``, on CPU, both fusion directions per step. Methods:

- ``vectorised``: ``mmfusion.models.fusion.gemini_fusion.GeminiFusionAttention`` as shipped: on
  CPU it fuses the B * N tokens in chunks of ``chunk_tokens`` (``--chunk-tokens``, default 8192,
  the module's default), which keeps its intermediates in cache.
- ``vectorised_unchunked``: the same module with ``chunk_tokens=None``, all B * N tokens at once
  (same output), to show the effect of the chunking.
- ``official_loop``: the official code's structure (github.com/JiaDingCN/GeminiFusion,
  ``models/mix_transformer.py``): Python loop over the batch, per sample one sequence-first
  ``nn.MultiheadAttention`` call per direction with the N pixels as its batch (query length 1,
  2 keys). Timed at full size.
- ``per_pixel_loop``: Python loop over every pixel, one ``nn.MultiheadAttention`` call per pixel and
  direction over its 2 keys. Timed on ``--loop-pixels`` pixels, extrapolated linearly to B * N.
- ``cross_attention``: full cross-attention, every token of one modality over all N tokens of the
  other (Q/K/V/out projections, h heads, residual), both directions. Evaluated in query chunks of
  ``--cross-chunk`` (the unchunked (B, h, N, N) attention matrix does not fit); timed on
  ``--cross-queries`` queries of one sample and one direction, extrapolated linearly to all queries,
  samples and both directions.

Each timed method runs ``--repeat`` times; the JSON keeps every time, the best (minimum: the
least disturbed run on a shared machine) and the median, and speed-ups for both.

FLOPs per fusion step (both directions): counted analytically from the shapes (see ``flops``),
and their matrix-product part checked by running each method under
``torch.utils.flop_counter.FlopCounterMode`` on meta-device tensors (no memory, no compute; full
cross-attention unchunked). Also evaluated at the setting that reproduces the paper's quoted
0.14 vs 17 GFLOPs (see ``PAPER_SETTING``).

Peak memory: the increase of the process's peak resident set size (``VmHWM``, reset through
/proc/self/clear_refs just before the forward) over its resident size at that moment, each method
run once in a fresh subprocess after a small warm-up (``tracemalloc`` does not see PyTorch's CPU
allocations). Linux only. For the extrapolated methods it is the peak of the measured part.

Shape shorthand: B batch, N = H * W tokens, C channels, h heads.

Example::

    python tools/analysis_tools/benchmark_gemini_fusion.py --batch 8 --height 120 --width 160 \\
        --channels 64 --repeat 5 --loop-pixels 1000 --threads 1 \\
        --out docs/benchmarks/gemini_fusion_cpu-1thread-epyc.json

On a shared machine prefer ``--threads 1``: with 2 threads the loops' many small operations wait
for descheduled OpenMP threads and the timings spread widely.
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
from torch.utils.flop_counter import FlopCounterMode

from mmfusion.models.fusion.gemini_fusion import GeminiFusionAttention
from mmfusion.utils.process_memory import reset_peak_rss, status_bytes

METHODS = ('vectorised', 'vectorised_unchunked', 'official_loop', 'per_pixel_loop',
           'cross_attention')
OURS = ('vectorised', 'vectorised_unchunked')

# The paper (Sec. 3, GeminiFusion vs cross-attention cost) quotes about 0.14 GFLOPs vs 17 GFLOPs
# without the shapes in the text available here. N = 128 x 128 tokens (a 512 x 512 input at the
# stride-4 first stage of a MiT backbone) and C = 64 reproduce both: N^2 C = 17.18 G for one
# attention product (Q K^T) and 2 N C^2 = 0.134 G for the pixel-wise path. An inference from the
# numbers, not a statement of the paper.
PAPER_SETTING = dict(tokens=128 * 128, channels=64, heads=8,
                     quoted_gflops=dict(gemini=0.14, cross_attention=17.0))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=8, help='B')
    parser.add_argument('--height', type=int, default=120, help='token rows')
    parser.add_argument('--width', type=int, default=160, help='token columns')
    parser.add_argument('--channels', type=int, default=64, help='C')
    parser.add_argument('--heads', type=int, default=8, help='h')
    parser.add_argument('--repeat', type=int, default=3, help='timed runs of each method')
    parser.add_argument('--loop-pixels', type=int, default=200,
                        help='pixels timed by the per-pixel loop (then extrapolated)')
    parser.add_argument('--cross-queries', type=int, default=1024,
                        help='queries timed by full cross-attention (then extrapolated)')
    parser.add_argument('--cross-chunk', type=int, default=512, help='queries per attention chunk')
    parser.add_argument('--chunk-tokens', type=int, default=8192,
                        help="GeminiFusionAttention's chunk_tokens for the vectorised method")
    parser.add_argument('--methods', nargs='+', choices=METHODS, default=list(METHODS))
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the peak-memory subprocesses')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='work_dirs/benchmarks/gemini_fusion_cpu.json')
    parser.add_argument('--child', choices=METHODS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def make_inputs(args):
    gen = torch.Generator().manual_seed(args.seed)
    shape = (args.batch, args.height * args.width, args.channels)
    x_a, x_b = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    torch.manual_seed(args.seed)
    module = GeminiFusionAttention(args.channels, num_heads=args.heads,
                                   chunk_tokens=args.chunk_tokens).eval()
    return module, x_a, x_b


def _one_direction_inputs(module, x_m, x_o, row):
    """Official per-sample keys/values of one direction: q (1, N, C), k and v (2, N, C)."""
    q = x_m.unsqueeze(0)
    score = module.relation_discriminator(torch.cat([x_m, x_o], dim=-1).unsqueeze(0)).softmax(-1)
    k = torch.cat([q + module.k_noise.weight[row], q * score], dim=0)
    v = torch.cat([q + module.v_noise.weight[row], x_o.unsqueeze(0)], dim=0)
    return q, k, v


def with_chunk_tokens(module, x_a, x_b, chunk_tokens):
    """``module(x_a, x_b)`` with its ``chunk_tokens`` set to ``chunk_tokens`` for this call."""
    saved = module.chunk_tokens
    module.chunk_tokens = chunk_tokens
    try:
        return module(x_a, x_b)
    finally:
        module.chunk_tokens = saved


def official_loop(module, x_a, x_b):
    """Loop over the batch; per sample and direction one MHA call, pixels as its batch."""
    outs = ([], [])
    attns = (module.attn_a, module.attn_b)
    for bs in range(x_a.shape[0]):
        for row, (x_m, x_o) in enumerate(((x_a[bs], x_b[bs]), (x_b[bs], x_a[bs]))):
            q, k, v = _one_direction_inputs(module, x_m, x_o, row)
            outs[row].append(x_m + attns[row](q, k, v)[0].squeeze(0))
    return torch.stack(outs[0]), torch.stack(outs[1])


def per_pixel_loop(module, x_a, x_b, num_pixels):
    """Loop over the first ``num_pixels`` pixels of sample 0; one MHA call per pixel, direction."""
    attns = (module.attn_a, module.attn_b)
    outs = []
    for i in range(num_pixels):
        for row, (x_m, x_o) in enumerate(((x_a[0, i:i + 1], x_b[0, i:i + 1]),
                                          (x_b[0, i:i + 1], x_a[0, i:i + 1]))):
            q, k, v = _one_direction_inputs(module, x_m, x_o, row)
            outs.append(x_m + attns[row](q, k, v)[0].squeeze(0))
    return outs


def cross_attention_part(attn, x_m, x_o, num_queries, chunk):
    """Full cross-attention of ``num_queries`` tokens of x_m (N, C) over all N tokens of x_o.

    Returns:
        tuple[float, float]: seconds for the K/V projections of all N tokens, and seconds for the
        queries (Q projection, chunked softmax(Q K^T / sqrt(d)) V, output projection, residual).
    """
    n, c = x_o.shape
    h = attn.num_heads
    d = c // h
    w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
    b_q, b_k, b_v = attn.in_proj_bias.chunk(3)
    t0 = time.perf_counter()
    k = F.linear(x_o, w_k, b_k).view(n, h, d).transpose(0, 1)  # (h, N, d)
    v = F.linear(x_o, w_v, b_v).view(n, h, d).transpose(0, 1)
    t1 = time.perf_counter()
    for start in range(0, num_queries, chunk):
        xq = x_m[start:min(start + chunk, num_queries)]
        q = F.linear(xq, w_q, b_q).view(-1, h, d).transpose(0, 1) * d ** -0.5
        attn_weights = torch.matmul(q, k.transpose(1, 2)).softmax(dim=-1)  # (h, chunk, N)
        out = torch.matmul(attn_weights, v).transpose(0, 1).reshape(-1, c)
        _ = xq + attn.out_proj(out)
    return t1 - t0, time.perf_counter() - t1


def run_method(name, args, module, x_a, x_b):
    """One timed run; returns (seconds for the full B, N problem, extrapolation note or None)."""
    b, n = x_a.shape[:2]
    if name == 'vectorised':
        t = time.perf_counter()
        module(x_a, x_b)
        return time.perf_counter() - t, None
    if name == 'vectorised_unchunked':
        t = time.perf_counter()
        with_chunk_tokens(module, x_a, x_b, None)
        return time.perf_counter() - t, None
    if name == 'official_loop':
        t = time.perf_counter()
        official_loop(module, x_a, x_b)
        return time.perf_counter() - t, None
    if name == 'per_pixel_loop':
        p = min(args.loop_pixels, n)
        t = time.perf_counter()
        per_pixel_loop(module, x_a, x_b, p)
        dt = time.perf_counter() - t
        return dt * b * n / p, f'timed {p} pixels of 1 sample, both directions; x {b * n / p:.1f}'
    if name == 'cross_attention':
        nq = min(args.cross_queries, n)
        t_kv, t_q = cross_attention_part(module.attn_a, x_a[0], x_b[0], nq, args.cross_chunk)
        total = 2 * b * (t_kv + t_q * n / nq)
        return total, (f'timed 1 sample, 1 direction: K/V projections of all {n} tokens and '
                       f'{nq} of {n} queries in chunks of {args.cross_chunk}; total = 2 directions'
                       f' x {b} samples x (t_kv + t_queries x {n / nq:.2f})')
    raise ValueError(f'unknown method {name!r}')


def child_memory(args):
    """In a fresh process: peak RSS increase (MiB) of one run of ``args.child``."""
    module, x_a, x_b = make_inputs(args)
    with torch.no_grad():  # warm-up outside the measurement (lazy allocations, thread pools)
        run_method(args.child, args, module, x_a[:1, :256], x_b[:1, :256])
    before = reset_peak_rss()
    with torch.no_grad():
        run_method(args.child, args, module, x_a, x_b)
    peak = status_bytes('VmHWM')
    print(json.dumps(dict(peak_mib=max(peak - before, 0) / 2**20)))


def measure_memory(name, argv):
    cmd = [sys.executable, osp.abspath(__file__)] + argv + ['--child', name]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])['peak_mib']


def counted_macs(n, c, h):
    """MACs of the matrix products per sample and fusion step, both directions, counted by
    ``FlopCounterMode`` (which reports 2 FLOPs per MAC) on meta tensors of shape (1, n, c)."""
    with torch.device('meta'):
        torch.manual_seed(0)
        module = GeminiFusionAttention(c, num_heads=h).eval()
        x_a, x_b = torch.empty(1, n, c), torch.empty(1, n, c)
    runs = dict(
        vectorised=lambda: module(x_a, x_b),
        official_loop=lambda: official_loop(module, x_a, x_b),
        cross_attention=lambda: (cross_attention_part(module.attn_a, x_a[0], x_b[0], n, n),
                                 cross_attention_part(module.attn_b, x_b[0], x_a[0], n, n)))
    counted = {}
    with torch.no_grad():
        for name, fn in runs.items():
            counter = FlopCounterMode(display=False)
            with counter:
                fn()
            counted[name] = counter.get_total_flops() // 2
    return counted


def flops(n, c, h):
    """Multiply-accumulates (MACs) per sample and fusion step, both directions."""
    gemini_official = 2 * n * (9 * c * c + 4 * c)
    gemini_vectorised = 2 * n * (8 * c * c + 2 * c)
    cross = 2 * (4 * n * c * c + 2 * n * n * c)
    counted = counted_macs(n, c, h)
    # The counter sees matrix products only; the vectorised block's 2 C per token and direction
    # are element-wise (sigmoid weight, weighted sum), so its matmul-only count is 2 N 8 C^2.
    matmul_only = dict(vectorised=2 * n * 8 * c * c, official_loop=gemini_official,
                       cross_attention=cross)
    return dict(
        unit='MACs per sample per fusion step (both directions); FLOPs = 2 x MACs',
        gemini_formula='2 * N * (9 C^2 + 4 C): per token and direction, relation MLP 2C*C + C*C, '
                       'projections of 1 query + 2 keys + 2 values + output 6 C^2, attention '
                       'over 2 keys 2C (logits) + 2C (weighted sum)',
        gemini_vectorised_formula='2 * N * (8 C^2 + 2 C): as implemented (keys/values enter as '
                                  'k0 - k1 and v0 - v1, one projection fewer)',
        cross_attention_formula='2 * (4 N C^2 + 2 N^2 C): Q/K/V/out projections + Q K^T + A V',
        N=n, C=c, heads=h,
        gemini_gmacs=gemini_official / 1e9,
        gemini_vectorised_gmacs=gemini_vectorised / 1e9,
        cross_attention_gmacs=cross / 1e9,
        ratio_cross_over_gemini=cross / gemini_official,
        gemini_gflops=2 * gemini_official / 1e9,
        cross_attention_gflops=2 * cross / 1e9,
        flop_counter_macs=counted,
        flop_counter_method='torch.utils.flop_counter.FlopCounterMode on meta tensors, one sample, '
                            'both directions, matrix products only (mm/addmm/bmm), MACs = '
                            'counted FLOPs / 2; cross-attention unchunked',
        flop_counter_matches_formula={k: counted[k] == matmul_only[k] for k in counted},
    )


def paper_setting_flops():
    """The formulas at ``PAPER_SETTING`` next to the paper's quoted figures (GFLOPs as quoted)."""
    n, c = PAPER_SETTING['tokens'], PAPER_SETTING['channels']
    return dict(
        PAPER_SETTING,
        note='setting inferred from the quoted numbers (not stated in the sources available '
             'here): N = 128 x 128 = 16384 tokens, C = 64',
        one_attention_product_n2c_g=n * n * c / 1e9,
        pixelwise_2nc2_g=2 * n * c * c / 1e9,
        our_formula_gemini_gmacs_both_directions=2 * n * (9 * c * c + 4 * c) / 1e9,
        our_formula_cross_attention_gmacs_both_directions=2 * (4 * n * c * c + 2 * n * n * c) / 1e9,
        ratio_quoted=PAPER_SETTING['quoted_gflops']['cross_attention'] /
        PAPER_SETTING['quoted_gflops']['gemini'],
        ratio_our_formulas=(4 * n * c * c + 2 * n * n * c) / (n * (9 * c * c + 4 * c)),
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
    module, x_a, x_b = make_inputs(args)
    b, n, c = x_a.shape
    with torch.no_grad():
        # Agreement check on a slice (the loops are the definition of the function).
        ref = official_loop(module, x_a[:1, :2048], x_b[:1, :2048])
        vec = module(x_a[:1, :2048], x_b[:1, :2048])
        max_diff = max((r - v).abs().max().item() for r, v in zip(ref, vec))
        chunked = with_chunk_tokens(module, x_a[:2, :2048], x_b[:2, :2048], 1000)
        unchunked = with_chunk_tokens(module, x_a[:2, :2048], x_b[:2, :2048], None)
        max_diff_chunked = max((r - v).abs().max().item() for r, v in zip(unchunked, chunked))
        results = {}
        for name in args.methods:
            run_method(name, args, module, x_a[:1, :256], x_b[:1, :256])  # warm-up
            times, note = [], None
            for _ in range(args.repeat):
                t, note = run_method(name, args, module, x_a, x_b)
                times.append(t)
                print(f'{name}: {t:.3f} s', flush=True)
            results[name] = dict(best_s=min(times), median_s=statistics.median(times),
                                 times_s=times, extrapolated=note is not None,
                                 extrapolation=note)
    child_argv = [a for a in argv if a != '--no-memory']
    if not args.no_memory:
        for name in args.methods:
            results[name]['peak_mem_mib'] = measure_memory(name, child_argv)
            print(f'{name}: peak {results[name]["peak_mem_mib"]:.1f} MiB', flush=True)
    speedups = {f'{ours}_vs_{k}': dict(
        best=results[k]['best_s'] / results[ours]['best_s'],
        median=results[k]['median_s'] / results[ours]['median_s'])
        for ours in OURS if ours in results for k in results if k not in OURS}
    report = dict(
        config=dict(batch=b, height=args.height, width=args.width, tokens=n, channels=c,
                    heads=args.heads, repeat=args.repeat, loop_pixels=args.loop_pixels,
                    cross_queries=args.cross_queries, cross_chunk=args.cross_chunk,
                    chunk_tokens=args.chunk_tokens,
                    mode='forward, torch.no_grad, float32, both directions',
                    threads=torch.get_num_threads()),
        memory_method='peak RSS increase: VmHWM reset via /proc/self/clear_refs before the '
                      'forward, minus VmRSS at that moment; one run per method in a fresh '
                      'subprocess after a small warm-up; tracemalloc misses torch CPU allocations',
        cross_attention_unchunked_attention_matrix_mib=b * args.heads * n * n * 4 / 2**20,
        max_abs_diff_vectorised_vs_official_loop=max_diff,
        max_abs_diff_chunked_vs_unchunked=max_diff_chunked,
        results=results,
        speedups=speedups,
        flops=flops(n, c, args.heads),
        flops_paper_setting=paper_setting_flops(),
        env=dict(torch=torch.__version__, python=platform.python_version(),
                 machine=platform.machine(), processor=platform.processor(),
                 cpu_count=os.cpu_count(), load_average_at_end=os.getloadavg(),
                 load_average_at_start=load_start),
        command='python tools/analysis_tools/benchmark_gemini_fusion.py ' + ' '.join(argv),
    )
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=2)
    print(json.dumps(dict(speedups=speedups, flops_gmacs=dict(
        gemini=report['flops']['gemini_gmacs'],
        cross=report['flops']['cross_attention_gmacs'],
        counter_matches=report['flops']['flop_counter_matches_formula'])), indent=2))
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
