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
    """torch version, CPU model and count, threads; load average (other work skews timings)."""
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


def rel_err(actual, expected):
    return ((actual - expected).abs().max() / expected.abs().max().clamp_min(1e-30)).item()


def time_interleaved(fn_scan, fn_loop, repeat):
    """Wall-clock times of ``repeat`` alternating runs of both (fair under varying load)."""
    times = dict(scan=[], loop=[])
    results = {}
    for _ in range(repeat):
        for name, fn in (('scan', fn_scan), ('loop', fn_loop)):
            start = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - start)
    return times, results


def summary(times):
    return dict(runs_s=[round(t, 4) for t in times], best_s=round(min(times), 4),
                median_s=round(statistics.median(times), 4))


def bench_forward(args):
    inputs = make_inputs(args, args.length)
    with torch.no_grad():
        ss.selective_scan_torch(**inputs)  # warm-up (allocator, thread pool)
        times, results = time_interleaved(lambda: ss.selective_scan_torch(**inputs),
                                          lambda: ss.selective_scan_reference(**inputs),
                                          args.repeat)
    (out, last), (ref, ref_last) = results['scan'], results['loop']
    result = dict(loop=summary(times['loop']), scan=summary(times['scan']),
                  speedup_best=round(min(times['loop']) / min(times['scan']), 2),
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
    times, results = time_interleaved(lambda: run(ss.selective_scan_torch),
                                      lambda: run(ss.selective_scan_reference), args.repeat)
    (out, grads), (ref, ref_grads) = results['scan'], results['loop']
    errs = {f'rel_err_grad_{k}': rel_err(grads[k], ref_grads[k]) for k in names}
    result = dict(length=args.grad_length, loop=summary(times['loop']),
                  scan=summary(times['scan']),
                  speedup_best=round(min(times['loop']) / min(times['scan']), 2),
                  rel_err_output=rel_err(out, ref), **errs)
    result['agree_1e-4'] = max(v for k, v in result.items() if k.startswith('rel_err')) <= 1e-4
    return result


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report = dict(
        op='mmfusion.ops.selective_scan.selective_scan_torch vs selective_scan_reference',
        baseline=('selective_scan_reference: exp(delta * A) and delta * B * u materialised as '
                  '(B, D, L, N), then one state update + C contraction per step over L '
                  '(structure of mamba-ssm selective_scan_ref)'),
        timing=('wall clock, best (and median) of --repeat alternating runs of each; forward '
                'under torch.no_grad'),
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
    report['load_average_at_end'] = [round(x, 2) for x in os.getloadavg()]
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=2)
    print(f'wrote {args.out}')
    parts = [report['forward']] + ([report['forward_backward']] if args.grad_length > 0 else [])
    if not all(part['agree_1e-4'] for part in parts):
        sys.exit('the scan and the step-by-step loop disagree (relative error > 1e-4)')


if __name__ == '__main__':
    main()
