"""Benchmark the selective scan: speed, peak memory of training, oversubscription; CPU or CUDA.

CPU sections (``--device cpu``, the default), each writing into one JSON report:

- ``forward``: ``selective_scan_torch`` vs ``selective_scan_reference`` (mamba-ssm
  ``selective_scan_ref`` structure: discretise into (B, D, L, N) tensors, then loop over L), and
  the scan with all its ops on torch's thread pool (``pooled_threads``: the scan before its
  thread rules, see ``mmfusion.ops.selective_scan.torch_scan``, step 5), forward under
  ``torch.no_grad`` at ``--batch/--dim/--length``; checks that they agree.
- ``forward_backward``: the same with autograd at ``--grad-length``: the recomputing backward
  (``recompute``, the default) vs plain autograd through the scan's ops (``plain_autograd``,
  the earlier behaviour, with pooled threads) vs the loop; every gradient compared with the loop's.
- ``p3_training`` (``--p3``): one Fusion-Mamba P3 scan call as SS2D makes it (B=1, K=4 x 512 =
  2048 channels, L=80x80=6400, N=16, B/C grouped (B, 4, N, L), D skip, delta bias, softplus),
  forward+backward, recompute vs plain autograd, interleaved: time of the forward and of the
  backward, and the peak increase of resident memory (``VmHWM``, see
  :mod:`mmfusion.utils.process_memory`; inputs and cotangent allocated before) per run;
  forward-only (no_grad) time of the scan and of the scan with pooled threads.
- ``oversubscription`` (``--concurrent N``): N processes (this script, ``--worker``) each timing
  the forward of the ``forward`` section at once, with torch's default thread count and with
  one thread each, against one process alone; each variant for the current scan and for the
  pooled threads.

CUDA (``--device cuda``): the Triton kernel, the PyTorch scan and mamba-ssm's kernel (when its
compiled extension imports), forward and forward+backward at ``--batch/--dim/--length``
(``--layout``), time (CUDA events) and peak allocated memory (``torch.cuda.max_memory_allocated``
over the inputs), outputs and gradients compared with the PyTorch scan.

Shape shorthand: B batch, D channels, L length, N state size, G groups of B/C.

Example::

    python tools/analysis_tools/benchmark_selective_scan.py --repeat 3 --p3 --concurrent 2 \\
        --out work_dirs/benchmarks/selective_scan_cpu.json
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

import torch

from mmfusion.utils.process_memory import reset_peak_rss, status_bytes

# importlib: ``mmfusion.ops.selective_scan`` re-exports functions named like its submodules.
ss = importlib.import_module('mmfusion.ops.selective_scan')
torch_scan = importlib.import_module('mmfusion.ops.selective_scan.torch_scan')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--batch', type=int, default=2, help='B')
    parser.add_argument('--dim', type=int, default=1024, help='D')
    parser.add_argument('--length', type=int, default=6400, help='L')
    parser.add_argument('--state', type=int, default=16, help='N')
    parser.add_argument('--layout', choices=('shared', 'grouped', 'invariant'), default='shared',
                        help='B/C layout: (B, N, L), (B, G, N, L) or (D, N)')
    parser.add_argument('--groups', type=int, default=4, help='G for --layout grouped')
    parser.add_argument('--repeat', type=int, default=3, help='timed runs per method')
    parser.add_argument('--grad-length', type=int, default=512,
                        help='L of the forward+backward comparison with the loop (0: skip)')
    parser.add_argument('--p3', action='store_true', help='run the P3 training-call section')
    parser.add_argument('--concurrent', type=int, default=0,
                        help='processes of the oversubscription section (0: skip)')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--worker', choices=('current', 'pooled_threads'), default=None,
                        help=argparse.SUPPRESS)  # one process of the oversubscription section
    parser.add_argument('--out', default='work_dirs/benchmarks/selective_scan_cpu.json')
    return parser.parse_args(argv)


def make_inputs(batch, dim, length, state, layout='shared', groups=4, seed=0, gate=True,
                device='cpu'):
    """Mamba-like inputs: softplus(delta + bias) steps, A = -exp(A_log), skip D (and gate z)."""
    gen = torch.Generator().manual_seed(seed)
    shape_bc = {'shared': (batch, state, length), 'grouped': (batch, groups, state, length),
                'invariant': (dim, state)}[layout]
    inputs = dict(
        u=torch.randn(batch, dim, length, generator=gen),
        delta=torch.randn(batch, dim, length, generator=gen),
        A=-torch.arange(1, state + 1, dtype=torch.float32).repeat(dim, 1),
        B=torch.randn(shape_bc, generator=gen),
        C=torch.randn(shape_bc, generator=gen),
        D=torch.randn(dim, generator=gen),
        z=torch.randn(batch, dim, length, generator=gen) if gate else None,
        delta_bias=torch.rand(dim, generator=gen) * 4 - 4.6,  # softplus in ~[0.01, 0.7]
        delta_softplus=True,
        return_last_state=True)
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


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
    return ((actual.float() - expected.float()).abs().max() /
            expected.float().abs().max().clamp_min(1e-30)).item()


def time_interleaved(fns, repeat):
    """Wall-clock times of ``repeat`` rounds, each running every fn once (fair under varying
    load); returns the times and the last result of each."""
    times = {name: [] for name in fns}
    results = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - start)
    return times, results


def summary(times):
    return dict(runs_s=[round(t, 4) for t in times], best_s=round(min(times), 4),
                median_s=round(statistics.median(times), 4))


class pooled_threads:
    """Context: every op of the scan uses torch's thread pool, as before the scan's thread rules
    (per-step ops of small states and every step loop on a busy machine on one thread)."""

    def __enter__(self):
        self.saved = torch_scan._STEP_SERIAL_ELEMS, torch_scan._BUSY_LOAD_PER_CORE
        torch_scan._STEP_SERIAL_ELEMS, torch_scan._BUSY_LOAD_PER_CORE = 0, float('inf')

    def __exit__(self, *exc):
        torch_scan._STEP_SERIAL_ELEMS, torch_scan._BUSY_LOAD_PER_CORE = self.saved


def scan_pooled(**inputs):
    with pooled_threads():
        return ss.selective_scan_torch(**inputs)


def bench_forward(args):
    inputs = make_inputs(args.batch, args.dim, args.length, args.state, args.layout,
                         args.groups, args.seed)
    with torch.no_grad():
        ss.selective_scan_torch(**inputs)  # warm-up (allocator, thread pool)
        times, results = time_interleaved(
            dict(scan=lambda: ss.selective_scan_torch(**inputs),
                 pooled_threads=lambda: scan_pooled(**inputs),
                 loop=lambda: ss.selective_scan_reference(**inputs)), args.repeat)
    (out, last), (ref, ref_last) = results['scan'], results['loop']
    result = {name: summary(t) for name, t in times.items()}
    result.update(speedup_best=round(min(times['loop']) / min(times['scan']), 2),
                  speedup_median=round(statistics.median(times['loop']) /
                                       statistics.median(times['scan']), 2),
                  rel_err_output=rel_err(out, ref), rel_err_last_state=rel_err(last, ref_last),
                  rel_err_pooled_vs_scan=rel_err(results['pooled_threads'][0], out))
    result['agree_1e-4'] = max(result['rel_err_output'], result['rel_err_last_state']) <= 1e-4
    return result


def run_with_grads(fn, inputs, cotangent, **kwargs):
    """Forward + backward of ``(out * cotangent).sum()``; returns (out, grads, forward s,
    backward s)."""
    names = [k for k, v in inputs.items() if isinstance(v, torch.Tensor)]
    leaves = {k: inputs[k].clone().requires_grad_(True) for k in names}
    start = time.perf_counter()
    out, _ = fn(**{**inputs, **leaves}, **kwargs)
    middle = time.perf_counter()
    (out * cotangent).sum().backward()
    end = time.perf_counter()
    return out.detach(), {k: v.grad for k, v in leaves.items()}, middle - start, end - middle


def bench_forward_backward(args):
    inputs = make_inputs(args.batch, args.dim, args.grad_length, args.state, args.layout,
                         args.groups, args.seed)
    cotangent = torch.randn(args.batch, args.dim, args.grad_length,
                            generator=torch.Generator().manual_seed(args.seed + 1))
    fns = dict(recompute=lambda: run_with_grads(ss.selective_scan_torch, inputs, cotangent),
               plain_autograd=lambda: run_with_grads(scan_pooled, inputs, cotangent,
                                                     recompute=False),
               loop=lambda: run_with_grads(ss.selective_scan_reference, inputs, cotangent))
    fns['recompute']()  # warm-up
    times, results = time_interleaved(fns, args.repeat)
    ref, ref_grads = results['loop'][:2]
    result = dict(length=args.grad_length, **{name: summary(t) for name, t in times.items()})
    result['speedup_best_over_loop'] = round(min(times['loop']) / min(times['recompute']), 2)
    for name in ('recompute', 'plain_autograd'):
        out, grads = results[name][:2]
        errs = [rel_err(out, ref)] + [rel_err(grads[k], ref_grads[k]) for k in grads]
        result[f'{name}_rel_err_max'] = max(errs)
        result[f'{name}_agree_1e-4'] = max(errs) <= 1e-4
    return result


def bench_p3(args):
    """One P3 scan call of a Fusion-Mamba block, forward + backward (module docstring)."""
    sizes = dict(batch=1, dim=4 * 512, length=80 * 80, state=16, layout='grouped', groups=4)
    inputs = make_inputs(**sizes, seed=args.seed, gate=False)
    input_mib = (inputs['u'].nbytes + inputs['delta'].nbytes) / 2**20
    cotangent = torch.randn(inputs['u'].shape,
                            generator=torch.Generator().manual_seed(args.seed + 1))
    runs = {'recompute': [], 'plain_autograd': []}
    results = {}
    for i in range(args.repeat + 1):  # the first round is a warm-up
        for name in runs:
            base = reset_peak_rss()
            out, grads, fwd_s, bwd_s = run_with_grads(  # before: plain autograd, pooled
                ss.selective_scan_torch if name == 'recompute' else scan_pooled, inputs,
                cotangent, recompute=name == 'recompute')
            peak = (status_bytes('VmHWM') - base) / 2**20
            if i > 0:
                runs[name].append(dict(forward_s=round(fwd_s, 3), backward_s=round(bwd_s, 3),
                                       peak_extra_mib=round(peak)))
            results[name] = (out, grads)
            del out, grads
    (out, grads), (ref, ref_grads) = results['recompute'], results['plain_autograd']
    errs = {f'rel_err_grad_{k}': rel_err(grads[k], ref_grads[k]) for k in grads}
    with torch.no_grad():
        no_grad = {k: v for k, v in inputs.items()}
        times, _ = time_interleaved(dict(scan=lambda: ss.selective_scan_torch(**no_grad),
                                         pooled_threads=lambda: scan_pooled(**no_grad)),
                                    args.repeat)

    def median(name, key):
        return statistics.median(r[key] for r in runs[name])

    result = dict(sizes=dict(sizes, z=None, D=True, delta_bias=True, delta_softplus=True),
                  u_plus_delta_mib=round(input_mib, 1), runs=runs,
                  forward_only_no_grad={name: summary(t) for name, t in times.items()},
                  rel_err_output=rel_err(out, ref), **errs)
    for name in runs:
        result[f'{name}_median'] = dict(
            forward_s=median(name, 'forward_s'), backward_s=median(name, 'backward_s'),
            forward_backward_s=round(median(name, 'forward_s') + median(name, 'backward_s'), 3),
            peak_extra_mib=max(r['peak_extra_mib'] for r in runs[name]))
    peak = result['recompute_median']['peak_extra_mib']
    result['recompute_peak_over_inputs'] = round(peak / input_mib, 2)
    result['target_peak_le_3x_inputs'] = peak <= 3 * input_mib
    return result


def worker(args):
    """One process of the oversubscription section: print the forward times as JSON."""
    inputs = make_inputs(args.batch, args.dim, args.length, args.state, args.layout,
                         args.groups, args.seed)
    fn = scan_pooled if args.worker == 'pooled_threads' else ss.selective_scan_torch
    with torch.no_grad():
        fn(**inputs)  # warm-up
        times, _ = time_interleaved(dict(scan=lambda: fn(**inputs)), args.repeat)
    print(json.dumps(times['scan']))


def bench_oversubscription(args):
    """Each variant: one process alone, then ``--concurrent`` processes at once."""
    result = dict(processes=args.concurrent, note=(
        'per-process median forward time; alone = one process on the machine (other jobs '
        'aside), concurrent = all processes started together'))
    for threads in (None, 1):
        for variant in ('current', 'pooled_threads'):
            command = [sys.executable, osp.abspath(__file__), '--worker', variant,
                       '--repeat', str(args.repeat)] + [
                           f'--{k}={getattr(args, k)}'
                           for k in ('batch', 'dim', 'length', 'state', 'layout', 'groups')]
            env = dict(os.environ)
            if threads is not None:
                env['OMP_NUM_THREADS'] = str(threads)
            else:
                env.pop('OMP_NUM_THREADS', None)
            key = f'{variant}_threads_{threads or "default"}'
            alone = _run_workers(command, env, 1)
            together = _run_workers(command, env, args.concurrent)
            result[key] = dict(alone_median_s=alone, concurrent_median_s=together)
    idle = result['current_threads_default']['alone_median_s'][0]
    for key, value in list(result.items()):
        if isinstance(value, dict):
            value['concurrent_over_idle_single'] = round(max(value['concurrent_median_s']) /
                                                         idle, 2)
    return result


def _run_workers(command, env, count):
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(count)]
    medians = []
    for proc in procs:
        stdout, _ = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f'worker {command} failed with exit code {proc.returncode}')
        medians.append(round(statistics.median(json.loads(stdout.strip().splitlines()[-1])), 3))
    return medians


def bench_cuda(args):
    """Triton / PyTorch / mamba-ssm on CUDA: time and peak memory, forward and fwd+bwd."""
    if not torch.cuda.is_available():
        sys.exit('--device cuda: no CUDA device is available')
    dispatch = importlib.import_module('mmfusion.ops.selective_scan.dispatch')
    backends = ['torch']
    if dispatch._triton_available():
        backends.append('triton')
    if dispatch._mamba_selective_scan_fn() is not None:
        backends.append('mamba')
    inputs = make_inputs(args.batch, args.dim, args.length, args.state, args.layout,
                         args.groups, args.seed, device='cuda')
    cotangent = torch.randn_like(inputs['u'])
    base_mem = torch.cuda.memory_allocated()
    result = dict(backends=backends, gpu=torch.cuda.get_device_name())
    outputs = {}
    for name in backends:
        def scan(**kw):
            return ss.selective_scan(**kw, backend=name)

        def timed(fn):
            fn()  # warm-up (compilation)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            times = []
            for _ in range(args.repeat):
                start, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
                start.record()
                value = fn()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            peak = (torch.cuda.max_memory_allocated() - base_mem) / 2**20
            return dict(summary(times), peak_extra_mib=round(peak)), value

        with torch.no_grad():
            forward, _ = timed(lambda: scan(**inputs))
        both, value = timed(lambda: run_with_grads(scan, inputs, cotangent)[:2])
        outputs[name] = value
        result[name] = dict(forward=forward, forward_backward=both)
    ref, ref_grads = outputs['torch']
    for name in backends[1:]:
        out, grads = outputs[name]
        result[name]['rel_err_max_vs_torch'] = max(
            [rel_err(out, ref)] + [rel_err(grads[k], ref_grads[k]) for k in grads])
    return result


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        return worker(args)
    report = dict(
        op='mmfusion.ops.selective_scan (see the docstring of '
           'tools/analysis_tools/benchmark_selective_scan.py for every section)',
        timing=('wall clock; methods run alternately, --repeat rounds (fair under varying '
                'load from other jobs); forward-only sections under torch.no_grad'),
        command=' '.join([osp.basename(sys.executable)] + sys.argv),
        sizes=dict(B=args.batch, D=args.dim, L=args.length, N=args.state, layout=args.layout,
                   G=args.groups if args.layout == 'grouped' else None),
        options=dict(D=True, z=True, delta_bias=True, delta_softplus=True,
                     return_last_state=True, dtype='float32'),
        device=cpu_description())
    checks = []
    if args.device == 'cuda':
        report['cuda'] = bench_cuda(args)
        print(json.dumps(report['cuda'], indent=1))
    else:
        report['forward'] = bench_forward(args)
        print(json.dumps(report['forward'], indent=1), flush=True)
        checks.append(report['forward']['agree_1e-4'])
        if args.grad_length > 0:
            report['forward_backward'] = bench_forward_backward(args)
            print(json.dumps(report['forward_backward'], indent=1), flush=True)
            checks += [report['forward_backward']['recompute_agree_1e-4']]
        if args.p3:
            report['p3_training'] = bench_p3(args)
            print(json.dumps(report['p3_training'], indent=1), flush=True)
        if args.concurrent:
            report['oversubscription'] = bench_oversubscription(args)
            print(json.dumps(report['oversubscription'], indent=1), flush=True)
    report['load_average_at_end'] = [round(x, 2) for x in os.getloadavg()]
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    staged = args.out + '.tmp'
    with open(staged, 'w') as f:
        json.dump(report, f, indent=2)
    os.replace(staged, args.out)
    print(f'wrote {args.out}')
    if not all(checks):
        sys.exit('the scan and the step-by-step loop disagree (relative error > 1e-4)')


if __name__ == '__main__':
    main()
