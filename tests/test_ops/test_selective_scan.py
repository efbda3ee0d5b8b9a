"""Tests for mmfusion.ops.selective_scan: the PyTorch scan (forward and its recomputing backward)
against the step-by-step loop, and the backend dispatch.

Shapes: B batch, D channels, L length, N state size, G groups (see
``mmfusion.ops.selective_scan.shapes``). The step-by-step reference is itself checked against an
explicit float64 numpy loop. The Triton kernel is tested in ``test_selective_scan_triton.py``.
"""
import importlib
import importlib.abc
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmfusion.ops.selective_scan import (selective_scan, selective_scan_reference,
                                         selective_scan_torch)

# importlib: ``mmfusion.ops.selective_scan`` re-exports functions named like its submodules.
ts = importlib.import_module('mmfusion.ops.selective_scan.torch_scan')
dispatch = importlib.import_module('mmfusion.ops.selective_scan.dispatch')

RTOL = 1e-4
LAYOUTS = ('invariant', 'shared', 'grouped')  # (D, N), (B, N, L), (B, G, N, L)
OPTIONS = {
    'plain': {},
    'skip': dict(D=True),
    'gate_bias': dict(z=True, delta_bias=True),
    'all': dict(D=True, z=True, delta_bias=True, delta_softplus=True, return_last_state=True),
}


def _projection(layout, batch, dim, seqlen, dstate, groups, gen):
    if layout == 'invariant':
        return torch.randn(dim, dstate, generator=gen)
    if layout == 'shared':
        return torch.randn(batch, dstate, seqlen, generator=gen)
    return torch.randn(batch, groups, dstate, seqlen, generator=gen)


def _inputs(batch=2, dim=4, seqlen=37, dstate=3, b_layout='shared', c_layout='shared',
            b_groups=2, c_groups=2, seed=0, delta_scale=1.0, a_scale=2.0, options=None):
    """Random scan arguments as a dict (A < 0 like Mamba's ``-exp(A_log)``)."""
    gen = torch.Generator().manual_seed(seed)
    options = dict(options or {})
    args = dict(
        u=torch.randn(batch, dim, seqlen, generator=gen),
        delta=torch.rand(batch, dim, seqlen, generator=gen) * delta_scale,
        A=-torch.rand(dim, dstate, generator=gen) * a_scale - 0.1,
        B=_projection(b_layout, batch, dim, seqlen, dstate, b_groups, gen),
        C=_projection(c_layout, batch, dim, seqlen, dstate, c_groups, gen))
    if options.pop('D', False):
        args['D'] = torch.randn(dim, generator=gen)
    if options.pop('z', False):
        args['z'] = torch.randn(batch, dim, seqlen, generator=gen)
    if options.pop('delta_bias', False):
        args['delta_bias'] = torch.randn(dim, generator=gen) * 0.5
    args.update(options)
    return args


def _tensors(args):
    return {k: v for k, v in args.items() if isinstance(v, torch.Tensor)}


def _run(fn, args, **kwargs):
    """Call ``fn`` on leaf copies of ``args``; return (outputs, grads of every tensor input)."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in _tensors(args).items()}
    result = fn(**{**args, **leaves}, **kwargs)
    outs = result if isinstance(result, tuple) else (result, )
    # A fixed random cotangent on the output (the last state carries no gradient, as in
    # mamba-ssm), so every input's gradient is exercised.
    weight = torch.randn(outs[0].shape, generator=torch.Generator().manual_seed(1))
    (outs[0].float() * weight).sum().backward()
    return [o.detach() for o in outs], {k: v.grad for k, v in leaves.items()}


def _assert_rel_close(actual, expected, rtol=RTOL, what=''):
    """Elementwise rtol, with an absolute floor of rtol * max|expected| for entries near 0."""
    assert torch.isfinite(actual).all(), f'{what}: non-finite values'
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * max(scale, 1e-30),
                               msg=lambda m: f'{what}: {m}')


def _assert_matches_reference(args, **kwargs):
    outs, grads = _run(selective_scan_torch, args, **kwargs)
    ref_outs, ref_grads = _run(selective_scan_reference, args)
    assert len(outs) == len(ref_outs)
    for i, (o, r) in enumerate(zip(outs, ref_outs)):
        assert o.shape == r.shape and o.dtype == r.dtype
        _assert_rel_close(o, r, what=f'output {i}')
    with torch.no_grad():  # the in-place variant used without autograd
        fast = selective_scan_torch(**args, **kwargs)
    for i, (o, r) in enumerate(zip(fast if isinstance(fast, tuple) else (fast, ), ref_outs)):
        _assert_rel_close(o, r, what=f'no-grad output {i}')
    assert grads.keys() == ref_grads.keys()
    for name, g in grads.items():
        assert g is not None, f'no gradient for {name}'
        _assert_rel_close(g, ref_grads[name], what=f'grad of {name}')


@pytest.mark.parametrize('b_layout', LAYOUTS)
@pytest.mark.parametrize('c_layout', LAYOUTS)
@pytest.mark.parametrize('option', sorted(OPTIONS))
def test_matches_reference_layouts_and_options(b_layout, c_layout, option):
    # Defaults at this size: one level, one block; other tests force segments and blocks.
    args = _inputs(b_layout=b_layout, c_layout=c_layout, options=OPTIONS[option])
    _assert_matches_reference(args)


@pytest.mark.parametrize('num_segments,block_len', [(1, 1), (1, 5), (3, 4), (4, 16), (37, 1),
                                                    (50, 3)])
@pytest.mark.parametrize('b_layout,c_layout', [('shared', 'grouped'), ('grouped', 'invariant'),
                                               ('invariant', 'shared')])
def test_matches_reference_two_level(num_segments, block_len, b_layout, c_layout):
    """Forced segment counts / block lengths that do not divide L, incl. more segments than L."""
    args = _inputs(b_layout=b_layout, c_layout=c_layout, options=OPTIONS['all'])
    _assert_matches_reference(args, num_segments=num_segments, block_len=block_len)


def test_different_group_counts_for_b_and_c():
    args = _inputs(dim=12, b_layout='grouped', c_layout='grouped', b_groups=2, c_groups=3,
                   options=OPTIONS['all'])
    _assert_matches_reference(args)
    _assert_matches_reference(args, num_segments=5, block_len=3)


@pytest.mark.parametrize('batch,dim,seqlen,dstate', [(1, 8, 1000, 4), (2, 3, 257, 16)])
def test_long_sequence_default_two_level(batch, dim, seqlen, dstate):
    """Small B*D*N: the default splits L into segments; the correction must stay exact."""
    num_segments, seg_len, _, _ = ts._plan(batch, dim, seqlen, dstate, None, None)
    assert num_segments > 1 and num_segments * seg_len >= seqlen
    args = _inputs(batch, dim, seqlen, dstate, b_layout='shared', c_layout='shared',
                   options=dict(D=True, delta_bias=True, delta_softplus=True,
                                return_last_state=True))
    _assert_matches_reference(args)


@pytest.mark.parametrize('num_segments,chunk_elems', [(1, 1), (1, 48), (3, 1), (3, 200)])
def test_several_chunks(monkeypatch, num_segments, chunk_elems):
    """Chunks of one or more blocks, the last one partial (L = 37, blocks of 3 steps)."""
    monkeypatch.setattr(ts, '_CHUNK_ELEMS', chunk_elems)
    args = _inputs(b_layout='grouped', c_layout='shared', options=OPTIONS['all'])
    _assert_matches_reference(args, num_segments=num_segments, block_len=3)
    args = _inputs(b_layout='shared', c_layout='invariant', options=OPTIONS['all'])
    _assert_matches_reference(args, num_segments=num_segments, block_len=3)


def test_default_single_level_at_large_width():
    """B*D*N = 32768: one level, several blocks, L not a multiple of them."""
    assert ts._plan(2, 1024, 45, 16, None, None)[:3] == (1, 45, 16)
    args = _inputs(2, 1024, 45, 16, b_layout='grouped', c_layout='shared', b_groups=4,
                   options=OPTIONS['all'])
    with torch.no_grad():
        out, last = selective_scan_torch(**args)
        ref, ref_last = selective_scan_reference(**args)
    _assert_rel_close(out, ref, what='output')
    _assert_rel_close(last, ref_last, what='last state')


@pytest.mark.parametrize('num_segments', [None, 1, 6])
def test_large_decay_is_stable(num_segments):
    """delta * |A| up to ~1e4: factors underflow to 0 like the loop, never inf or NaN."""
    args = _inputs(seqlen=64, delta_scale=300.0, a_scale=30.0,
                   options=dict(D=True, z=True, delta_bias=True, delta_softplus=True,
                                return_last_state=True))
    args['delta_bias'] = args['delta_bias'] + 50.0
    _assert_matches_reference(args, num_segments=num_segments, block_len=7)


@pytest.mark.parametrize('num_segments', [1, 5])
def test_negative_delta_without_softplus(num_segments):
    """delta < 0 (allowed without softplus) makes factors > 1; still the same recurrence."""
    args = _inputs(options=dict(D=True, return_last_state=True))
    args['delta'] = args['delta'] - 0.6
    _assert_matches_reference(args, num_segments=num_segments, block_len=4)


def test_single_channel_and_non_contiguous_inputs():
    args = _inputs(1, 1, 9, 2, b_layout='invariant', c_layout='shared', options=OPTIONS['all'])
    _assert_matches_reference(args)
    args = _inputs(options=OPTIONS['all'])
    for name in ('u', 'delta', 'z'):  # (B, D, L) views of (B, L, D) tensors, as Mamba has them
        args[name] = args[name].transpose(1, 2).contiguous().transpose(1, 2)
    args['B'] = torch.cat([args['B'], args['B']], dim=-1)[..., ::2]  # strided along L
    assert not args['u'].is_contiguous() and not args['B'].is_contiguous()
    _assert_matches_reference(args)
    _assert_matches_reference(args, num_segments=3, block_len=5)


def test_small_decay_long_memory():
    """delta * |A| ~ 1e-3: the state keeps its whole history (sums of many terms)."""
    args = _inputs(dim=4, seqlen=600, delta_scale=1e-3, a_scale=1.0,
                   options=dict(return_last_state=True))
    _assert_matches_reference(args)
    _assert_matches_reference(args, num_segments=7, block_len=32)


def _saved_by_autograd(args, **kwargs):
    """Tensors that autograd keeps for the backward of one scan call (forward only)."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in _tensors(args).items()}
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        selective_scan_torch(**{**args, **leaves}, **kwargs)
    return leaves, saved


def test_backward_saves_only_inputs_and_chunk_start_states(monkeypatch):
    monkeypatch.setattr(ts, '_CHUNK_ELEMS', 8 * 16)  # chunks of 8 steps: 13 chunks for L=100
    args = _inputs(2, 8, 100, 4, b_layout='grouped', c_layout='shared', options=OPTIONS['all'])
    leaves, saved = _saved_by_autograd(args, num_segments=1, block_len=4)
    inputs = {v.data_ptr() for v in leaves.values()}
    states = [t for t in saved if t.data_ptr() not in inputs]
    assert len(saved) - len(states) == len(leaves)
    (starts, ) = states
    assert starts.shape == (13, 2, 2, 4, 4)  # (chunks, B, G, N, D // G)
    _, plain = _saved_by_autograd(args, block_len=4, recompute=False)
    assert sum(t.numel() for t in plain) > 2 * 8 * 100 * 4  # the baseline keeps every step


@pytest.mark.parametrize('num_segments', [1, 4])
def test_gradient_of_the_last_state(monkeypatch, num_segments):
    """The last state's gradient enters the adjoint recurrence (as plain autograd did)."""
    monkeypatch.setattr(ts, '_CHUNK_ELEMS', 4 * 8)
    args = _inputs(b_layout='invariant', c_layout='grouped', options=OPTIONS['all'])
    grads = []
    for fn, kwargs in ((selective_scan_torch, dict(num_segments=num_segments, block_len=2)),
                       (selective_scan_reference, {})):
        leaves = {k: v.detach().clone().requires_grad_(True) for k, v in _tensors(args).items()}
        out, last = fn(**{**args, **leaves}, **kwargs)
        gen = torch.Generator().manual_seed(2)
        loss = (out * torch.randn(out.shape, generator=gen)).sum()
        (loss + (last * torch.randn(last.shape, generator=gen)).sum()).backward()
        grads.append({k: v.grad for k, v in leaves.items()})
    for name, g in grads[0].items():
        _assert_rel_close(g, grads[1][name], what=f'grad of {name}')


@pytest.mark.parametrize('b_layout,c_layout', [('grouped', 'shared'), ('invariant', 'grouped')])
def test_plain_autograd_baseline_matches_reference(b_layout, c_layout):
    """``recompute=False`` (the benchmarks' baseline) still gives the reference's gradients."""
    args = _inputs(b_layout=b_layout, c_layout=c_layout, options=OPTIONS['all'])
    _assert_matches_reference(args, recompute=False)
    _assert_matches_reference(args, num_segments=3, block_len=4, recompute=False)


@pytest.mark.parametrize('load,expected', [(100.0, 1), (0.0, 2)])
def test_step_loop_on_one_thread_while_machine_is_busy(monkeypatch, load, expected):
    """Oversubscribed (load average >= 1.5 per core): forward and backward loops on one thread;
    idle: torch's count. Results unchanged, thread count restored."""
    monkeypatch.setattr(ts.os, 'getloadavg', lambda: (load, load, load))
    monkeypatch.setattr(ts, '_STEP_SERIAL_ELEMS', 0)  # no per-step rule at these tiny sizes
    counts = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, 'set_num_threads', lambda n: counts.append(n) or real(n))
    previous = torch.get_num_threads()
    real(2)
    try:
        args = _inputs(options=OPTIONS['all'])
        _assert_matches_reference(args, num_segments=1, block_len=4)
        assert torch.get_num_threads() == 2
    finally:
        real(previous)
    assert counts == ([1, 2] * 3 if expected == 1 else [])  # grad forward, backward, no-grad


def _numpy_scan(args):
    """Explicit float64 loops straight from the recurrence (no vectorisation)."""
    a = {k: v.double().numpy() for k, v in _tensors(args).items()}
    u, delta, A, B, C = a['u'], a['delta'], a['A'], a['B'], a['C']
    batch, dim, seqlen = u.shape
    dstate = A.shape[1]
    out = np.zeros((batch, dim, seqlen))
    last = np.zeros((batch, dim, dstate))

    def proj(P, b, d, n, t):
        if P.ndim == 2:
            return P[d, n]
        if P.ndim == 3:
            return P[b, n, t]
        return P[b, d // (dim // P.shape[1]), n, t]

    for b in range(batch):
        for d in range(dim):
            h = np.zeros(dstate)
            for t in range(seqlen):
                dt = delta[b, d, t] + (a['delta_bias'][d] if 'delta_bias' in a else 0.0)
                if args.get('delta_softplus'):
                    dt = np.log1p(np.exp(dt))
                y = 0.0
                for n in range(dstate):
                    h[n] = np.exp(dt * A[d, n]) * h[n] + dt * proj(B, b, d, n, t) * u[b, d, t]
                    y += proj(C, b, d, n, t) * h[n]
                if 'D' in a:
                    y += a['D'][d] * u[b, d, t]
                if 'z' in a:
                    zz = a['z'][b, d, t]
                    y *= zz / (1.0 + np.exp(-zz))
                out[b, d, t] = y
            last[b, d] = h
    return out, last


@pytest.mark.parametrize('b_layout,c_layout', [('grouped', 'shared'), ('invariant', 'grouped')])
def test_reference_and_fast_path_match_numpy_float64(b_layout, c_layout):
    args = _inputs(2, 4, 9, 3, b_layout=b_layout, c_layout=c_layout, options=OPTIONS['all'])
    expected, expected_last = (torch.from_numpy(x).float() for x in _numpy_scan(args))
    for fn, kwargs in ((selective_scan_reference, {}), (selective_scan_torch, {}),
                       (selective_scan_torch, dict(num_segments=3, block_len=2))):
        out, last = fn(**args, **kwargs)
        _assert_rel_close(out, expected, what=f'{fn.__name__} output')
        _assert_rel_close(last, expected_last, what=f'{fn.__name__} last state')


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_inputs(dtype):
    args = _inputs(options=OPTIONS['all'])
    low = {k: (v.to(dtype) if isinstance(v, torch.Tensor) else v) for k, v in args.items()}
    out, last = selective_scan_torch(**low)
    assert out.dtype == dtype and last.dtype == torch.float32
    # Same numbers as fp32 on the rounded inputs: the computation itself runs in fp32.
    up = {k: (v.float() if isinstance(v, torch.Tensor) else v) for k, v in low.items()}
    ref, ref_last = selective_scan_reference(**up)
    _assert_rel_close(out.float(), ref.to(dtype).float(), rtol=1e-2, what='output')
    _assert_rel_close(last, ref_last, what='last state')
    assert selective_scan_reference(**low)[0].dtype == dtype


def test_public_op_on_cpu_equals_torch_path():
    args = _inputs(options=OPTIONS['all'])
    out, last = selective_scan(**args)
    ref, ref_last = selective_scan_torch(**args)
    assert torch.equal(out, ref) and torch.equal(last, ref_last)
    assert isinstance(selective_scan(**{**args, 'return_last_state': False}), torch.Tensor)


def _bad_shape_cases():
    good = _inputs(options=dict(D=True, z=True, delta_bias=True))
    cases = {
        'u': torch.randn(2, 4),
        'delta': torch.randn(2, 4, 36),
        'A': torch.randn(5, 3),
        'B': torch.randn(2, 3, 36),
        'C': torch.randn(2, 3, 3, 37),  # G = 3 does not divide D = 4
        'D': torch.randn(5),
        'z': torch.randn(1, 4, 37),
        'delta_bias': torch.randn(4, 1),
    }
    return good, cases


@pytest.mark.parametrize('name', ['u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias'])
@pytest.mark.parametrize('fn', [selective_scan, selective_scan_torch, selective_scan_reference])
def test_bad_shape_raises_value_error(name, fn):
    good, cases = _bad_shape_cases()
    with pytest.raises(ValueError, match=rf'^{name} must be .*got shape'):
        fn(**{**good, name: cases[name]})


def test_other_invalid_arguments():
    args = _inputs()
    with pytest.raises(ValueError, match='u must be'):
        selective_scan(**{**args, 'u': torch.randn(2, 4, 0), 'delta': torch.randn(2, 4, 0)})
    with pytest.raises(ValueError, match='block_len must be >= 1'):
        selective_scan_torch(**args, block_len=0)
    with pytest.raises(ValueError, match='num_segments must be >= 1'):
        selective_scan_torch(**args, num_segments=0)
    with pytest.raises(NotImplementedError, match='real-valued'):
        selective_scan(**{**args, 'A': torch.complex(args['A'], args['A'])})


class _BlockImports(importlib.abc.MetaPathFinder):
    """Records every attempt to import one of ``names`` (top-level packages) and makes it fail
    with ``error``."""

    def __init__(self, names, error):
        self.names = names
        self.error = error
        self.attempts = []

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split('.')[0] in self.names:
            self.attempts.append(fullname)
            raise self.error
        return None


@pytest.fixture
def fresh_dispatch(monkeypatch):
    """No backend choice or import result remembered, no override, triton unavailable (the
    fake CUDA tensors below live on the CPU); restored afterwards."""
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    dispatch.reset_backend_choice()
    monkeypatch.setattr(dispatch, '_triton_available', lambda: False)
    yield
    dispatch._CHOSEN.clear()  # before monkeypatch restores the functions
    dispatch._LOGGED.clear()
    dispatch._mamba_selective_scan_fn.cache_clear()


@pytest.fixture
def block_mamba(monkeypatch, fresh_dispatch):
    """Make ``import mamba_ssm`` / ``import selective_scan_cuda`` raise (and record attempts)."""
    names = ('mamba_ssm', 'selective_scan_cuda')
    for name in list(sys.modules):
        if name.split('.')[0] in names:
            monkeypatch.delitem(sys.modules, name)
    finder = _BlockImports(names, ImportError('blocked by test'))
    monkeypatch.setattr(sys, 'meta_path', [finder] + sys.meta_path)
    yield finder


class _FakeCudaTensor(torch.Tensor):
    """A CPU tensor claiming to be on CUDA, to drive the dispatch branch without a GPU."""

    @property
    def is_cuda(self):
        return True


def test_cpu_inputs_never_import_mamba_ssm(block_mamba):
    args = _inputs(options=OPTIONS['all'])
    out, last = selective_scan(**args)
    assert block_mamba.attempts == []
    ref, ref_last = selective_scan_reference(**args)
    _assert_rel_close(out, ref, what='output')


def test_importing_the_ops_loads_neither_triton_nor_mamba_ssm():
    code = ('import sys, mmfusion.ops, mmfusion.ops.selective_scan; '
            'assert not {"triton", "mamba_ssm", "selective_scan_cuda"} & set(sys.modules)')
    import subprocess
    subprocess.run([sys.executable, '-c', code], check=True)


@pytest.mark.parametrize('error', [ImportError('no mamba'), OSError('bad .so'),
                                   RuntimeError('no CUDA')])
def test_cuda_inputs_without_mamba_ssm_fall_back(block_mamba, error):
    block_mamba.error = error
    args = _inputs(options=OPTIONS['all'])
    fake = {**args, 'u': args['u'].as_subclass(_FakeCudaTensor)}
    out, _ = selective_scan(**fake)
    assert block_mamba.attempts  # the import was tried ...
    ref, _ = selective_scan_reference(**args)
    _assert_rel_close(out.as_subclass(torch.Tensor), ref, what='output')  # ... then fell back
    attempts = len(block_mamba.attempts)
    selective_scan(**fake)
    assert len(block_mamba.attempts) == attempts  # the failed import is not retried


def _fake_mamba_ssm(monkeypatch, with_kernel):
    """Install a fake mamba-ssm whose ``selective_scan_fn`` records its calls; the compiled
    ``selective_scan_cuda`` extension is present only ``with_kernel``."""
    calls = []

    def fake_selective_scan_fn(*args, **kwargs):
        calls.append((args, kwargs))
        return 'from mamba_ssm'

    module = type(sys)('mamba_ssm.ops.selective_scan_interface')
    module.selective_scan_fn = fake_selective_scan_fn
    for name in ('mamba_ssm', 'mamba_ssm.ops'):
        monkeypatch.setitem(sys.modules, name, type(sys)(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(sys.modules['mamba_ssm'], 'ops', sys.modules['mamba_ssm.ops'],
                        raising=False)
    monkeypatch.setattr(sys.modules['mamba_ssm.ops'], 'selective_scan_interface', module,
                        raising=False)
    if with_kernel:
        monkeypatch.setitem(sys.modules, 'selective_scan_cuda', type(sys)('selective_scan_cuda'))
    else:  # mamba-ssm installed without its kernels: the extension is missing
        finder = _BlockImports(('selective_scan_cuda', ), ImportError('no kernel'))
        monkeypatch.delitem(sys.modules, 'selective_scan_cuda', raising=False)
        monkeypatch.setattr(sys, 'meta_path', [finder] + sys.meta_path)
    return calls


def test_cuda_inputs_call_mamba_ssm_selective_scan_fn(monkeypatch, fresh_dispatch):
    calls = _fake_mamba_ssm(monkeypatch, with_kernel=True)
    args = _inputs(options=OPTIONS['all'])
    u = args['u'].as_subclass(_FakeCudaTensor)
    assert selective_scan(**{**args, 'u': u}) == 'from mamba_ssm'
    (pos, kw), = calls
    assert pos[0] is u and all(p is args[k] for p, k in zip(pos[1:], 'delta A B C'.split()))
    assert kw == dict(D=args['D'], z=args['z'], delta_bias=args['delta_bias'],
                      delta_softplus=True, return_last_state=True)


def test_mamba_ssm_without_compiled_kernel_is_not_used(monkeypatch, fresh_dispatch):
    """mamba-ssm's interface imports without ``selective_scan_cuda``: use the next backend."""
    calls = _fake_mamba_ssm(monkeypatch, with_kernel=False)
    args = _inputs(options=OPTIONS['all'])
    u = args['u'].as_subclass(_FakeCudaTensor)
    assert dispatch.resolve_backend(u) == 'torch'
    out, _ = selective_scan(**{**args, 'u': u})
    assert calls == []
    _assert_rel_close(out.as_subclass(torch.Tensor), selective_scan_reference(**args)[0],
                      what='output')
    with pytest.raises(RuntimeError, match='MAMBA_KEEP_CUDA_BUILD=TRUE'):
        selective_scan(**{**args, 'u': u}, backend='mamba')


def test_triton_is_chosen_for_cuda_without_mamba(block_mamba, monkeypatch):
    monkeypatch.setattr(dispatch, '_triton_available', lambda: True)
    u = torch.zeros(1).as_subclass(_FakeCudaTensor)
    assert dispatch.resolve_backend(u) == 'triton'
    assert dispatch.resolve_backend(torch.zeros(1)) == 'torch'  # CPU tensors: PyTorch


def test_backend_override_by_argument_and_environment(block_mamba, monkeypatch):
    args = _inputs(options=OPTIONS['all'])
    u = args['u'].as_subclass(_FakeCudaTensor)
    monkeypatch.setattr(dispatch, '_triton_available', lambda: True)
    monkeypatch.setenv(dispatch.ENV_VAR, 'torch')
    assert dispatch.resolve_backend(u) == 'torch'  # environment beats the automatic triton
    out, _ = selective_scan(**{**args, 'u': u})
    _assert_rel_close(out.as_subclass(torch.Tensor), selective_scan_reference(**args)[0],
                      what='output')
    monkeypatch.setenv(dispatch.ENV_VAR, 'cuda-kernel')
    with pytest.raises(ValueError, match=r"unknown backend 'cuda-kernel' from environment "
                       r'variable MMFUSION_SELECTIVE_SCAN; expected one of torch, triton, mamba'):
        selective_scan(**args)
    assert dispatch.resolve_backend(u, backend='torch') == 'torch'  # the argument beats it
    with pytest.raises(ValueError, match="unknown backend 'TORCH' from argument backend"):
        selective_scan(**args, backend='TORCH')
    monkeypatch.delenv(dispatch.ENV_VAR)
    with pytest.raises(RuntimeError, match='backend mamba .* needs CUDA tensors'):
        selective_scan(**args, backend='mamba')
    monkeypatch.delenv('TRITON_INTERPRET', raising=False)
    with pytest.raises(RuntimeError, match='backend triton .* needs CUDA tensors'):
        selective_scan(**args, backend='triton')


def test_backend_choice_is_made_and_logged_once_per_device(block_mamba, monkeypatch):
    import mmengine.logging
    logged = []
    monkeypatch.setattr(mmengine.logging, 'print_log', lambda msg, **kw: logged.append(msg))
    args = _inputs()
    for _ in range(3):
        selective_scan(**args)
    fake = {**args, 'u': args['u'].as_subclass(_FakeCudaTensor)}
    selective_scan(**fake)
    selective_scan(**fake)
    assert logged == ['selective_scan on cpu tensors: torch backend (automatic)',
                      'selective_scan on cuda tensors: torch backend (automatic)']
    assert block_mamba.attempts == ['selective_scan_cuda']  # tried once, not per call


def test_softplus_matches_torch_softplus():
    """delta_softplus uses torch's softplus (threshold 20), like mamba-ssm's reference."""
    args = _inputs(dim=1, seqlen=3, dstate=1, b_layout='invariant', c_layout='invariant')
    args.update(delta=torch.tensor([[[-3.0, 0.5, 30.0]]]), u=torch.ones(1, 1, 3),
                A=torch.tensor([[-1.0]]), B=torch.ones(1, 1), C=torch.ones(1, 1))
    out = selective_scan_torch(**args, delta_softplus=True, return_last_state=True)[1]
    dt = F.softplus(args['delta'][0, 0])
    h = 0.0
    for t in range(3):
        h = torch.exp(-dt[t]) * h + dt[t]
    torch.testing.assert_close(out[0, 0, 0], h)


@pytest.mark.filterwarnings('ignore::torch.jit.TracerWarning')
def test_torch_path_is_traceable():
    """torch.jit.trace (what the TorchScript ONNX exporter runs) records the functional ops."""
    args = _inputs(seqlen=20, b_layout='grouped', c_layout='shared', options=OPTIONS['all'])
    names = [k for k, v in args.items() if isinstance(v, torch.Tensor)]

    def scan(*tensors):
        return selective_scan_torch(**{**args, **dict(zip(names, tensors))}, num_segments=2,
                                    block_len=4)

    with torch.no_grad():
        traced = torch.jit.trace(scan, tuple(args[k] for k in names), check_trace=False)
        fresh = _inputs(seqlen=20, b_layout='grouped', c_layout='shared', seed=3,
                        options=OPTIONS['all'])
        out, last = traced(*(fresh[k] for k in names))
        ref, ref_last = selective_scan_reference(**fresh)
    _assert_rel_close(out, ref, what='traced output')
    _assert_rel_close(last, ref_last, what='traced last state')


@pytest.mark.slow
def test_faster_than_step_loop():
    """Speed guard, timing-sensitive (hence slow-marked): B=2, D=1024, L=1024, N=16 forward."""
    import time
    args = _inputs(2, 1024, 1024, 16, options=dict(D=True, delta_softplus=True))

    def best_time(fn, repeat):
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn(**args)
            times.append(time.perf_counter() - start)
        return min(times)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # steadier on a shared machine than competing thread pools
    try:
        with torch.no_grad():
            selective_scan_torch(**args)
            ratio = best_time(selective_scan_reference, 2) / best_time(selective_scan_torch, 3)
    finally:
        torch.set_num_threads(threads)
    assert ratio > 3, f'only {ratio:.1f}x faster than the step-by-step loop'
