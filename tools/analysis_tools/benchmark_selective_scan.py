"""Benchmark the PyTorch selective scan against the step-by-step loop on CPU.

Times ``mmfusion.ops.selective_scan.selective_scan_torch`` (blocked / two-level scan) and
``selective_scan_reference`` (mamba-ssm ``selective_scan_ref`` structure: discretise into
(B, D, L, N) tensors, then loop over L), forward under ``torch.no_grad`` at the given size and,
optionally, forward+backward at a smaller length; checks that both agree; writes a JSON report.

Shape shorthand: B batch, D channels, L length, N state size, G groups of B/C.

Example::

    python tools/analysis_tools/benchmark_selective_scan.py --batch 2 --dim 1024 \\
        --length 6400 --state 16 --repeat 3 --out work_dirs/benchmarks/selective_scan_cpu.json
"""
import argparse
import importlib
import json
import os
import os.path as osp
import platform
import statistics
import sys
import time

import torch

# importlib: ``mmfusion.ops`` may re-export a function of the same name as the submodule.
ss = importlib.import_module('mmfusion.ops.selective_scan')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=2, help='B')
    parser.add_argument('--dim', type=int, default=1024, help='D')
    parser.add_argument('--length', type=int, default=6400, help='L')
    parser.add_argument('--state', type=int, default=16, help='N')
    parser.add_argument('--layout', choices=('shared', 'grouped', 'invariant'), default='shared',
                        help='B/C layout: (B, N, L), (B, G, N, L) or (D, N)')
    parser.add_argument('--groups', type=int, default=4, help='G for --layout grouped')
    parser.add_argument('--repeat', type=int, default=3, help='timed runs per method')
    parser.add_argument('--grad-length', type=int, default=512,
                        help='L of the forward+backward benchmark (0 to skip it)')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='work_dirs/benchmarks/selective_scan_cpu.json')
    return parser.parse_args()


def make_inputs(args, length):
    """Mamba-like inputs: softplus(delta + bias) steps, A = -exp(A_log), skip D and gate z."""
    gen = torch.Generator().manual_seed(args.seed)
    b, d, n = args.batch, args.dim, args.state
    shape_bc = {'shared': (b, n, length), 'grouped': (b, args.groups, n, length),
                'invariant': (d, n)}[args.layout]
    return dict(
        u=torch.randn(b, d, length, generator=gen),
        delta=torch.randn(b, d, length, generator=gen),
        A=-torch.arange(1, n + 1, dtype=torch.float32).repeat(d, 1),
        B=torch.randn(shape_bc, generator=gen),
        C=torch.randn(shape_bc, generator=gen),
        D=torch.randn(d, generator=gen),
        z=torch.randn(b, d, length, generator=gen),
        delta_bias=torch.rand(d, generator=gen) * 4 - 4.6,  # softplus in ~[0.01, 0.7]
        delta_softplus=True,
        return_last_state=True)


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
                platform=platform.platform())


def rel_err(actual, expected):
    return ((actual - expected).abs().max() / expected.abs().max().clamp_min(1e-30)).item()


def time_runs(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def summary(times):
    return dict(runs_s=[round(t, 4) for t in times], best_s=round(min(times), 4),
                median_s=round(statistics.median(times), 4))


def bench_forward(args):
    inputs = make_inputs(args, args.length)
    with torch.no_grad():
        ss.selective_scan_torch(**inputs)  # warm-up (allocator, thread pool)
        scan_times, (out, last) = time_runs(lambda: ss.selective_scan_torch(**inputs),
                                            args.repeat)
        loop_times, (ref, ref_last) = time_runs(
            lambda: ss.selective_scan_reference(**inputs), args.repeat)
    result = dict(loop=summary(loop_times), scan=summary(scan_times),
                  speedup_best=round(min(loop_times) / min(scan_times), 2),
                  rel_err_output=rel_err(out, ref), rel_err_last_state=rel_err(last, ref_last))
    result['agree_1e-4'] = max(result['rel_err_output'], result['rel_err_last_state']) <= 1e-4
    return result


def bench_forward_backward(args):
    inputs = make_inputs(args, args.grad_length)
    names = [k for k, v in inputs.items() if isinstance(v, torch.Tensor)]
    cotangent = torch.randn(args.batch, args.dim, args.grad_length,
                            generator=torch.Generator().manual_seed(args.seed + 1))

    def run(fn):
        leaves = {k: inputs[k].clone().requires_grad_(True) for k in names}
        out, _ = fn(**{**inputs, **leaves})
        (out * cotangent).sum().backward()
        return out.detach(), {k: v.grad for k, v in leaves.items()}

    run(ss.selective_scan_torch)  # warm-up
    scan_times, (out, grads) = time_runs(lambda: run(ss.selective_scan_torch), args.repeat)
    loop_times, (ref, ref_grads) = time_runs(lambda: run(ss.selective_scan_reference),
                                             args.repeat)
    errs = {f'rel_err_grad_{k}': rel_err(grads[k], ref_grads[k]) for k in names}
    result = dict(length=args.grad_length, loop=summary(loop_times), scan=summary(scan_times),
                  speedup_best=round(min(loop_times) / min(scan_times), 2),
                  rel_err_output=rel_err(out, ref), **errs)
    result['agree_1e-4'] = max(v for k, v in result.items() if k.startswith('rel_err')) <= 1e-4
    return result


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report = dict(
        op='mmfusion.ops.selective_scan.selective_scan_torch vs selective_scan_reference',
        command=' '.join([osp.basename(sys.executable)] + sys.argv),
        sizes=dict(B=args.batch, D=args.dim, L=args.length, N=args.state, layout=args.layout,
                   G=args.groups if args.layout == 'grouped' else None),
        options=dict(D=True, z=True, delta_bias=True, delta_softplus=True,
                     return_last_state=True, dtype='float32'),
        device=cpu_description(),
        forward=bench_forward(args))
    print(json.dumps(report['forward'], indent=1))
    if args.grad_length > 0:
        report['forward_backward'] = bench_forward_backward(args)
        print(json.dumps(report['forward_backward'], indent=1))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=2)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
