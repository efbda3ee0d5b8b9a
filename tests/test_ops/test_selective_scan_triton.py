"""Tests for the Triton selective-scan kernels, run by Triton's interpreter on CPU.

``TRITON_INTERPRET=1`` must be set before triton is imported, so the checks run in a fresh
interpreter (this file executed as a script) and the test only launches it. Values and every
gradient are compared with the step-by-step reference at small sizes, for B / C in all three
layouts, several chunks (the chunk length is lowered to 4 steps), fp32 and bf16 / fp16 inputs.
"""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

# Sizes as test_selective_scan._inputs (D=4, N=3, B / C groups 2) unless stated, but B=1 and
# L=9 (the interpreter runs every step of every program in Python).
CASES = [
    dict(b_layout='shared', c_layout='grouped', options='all', batch=2),
    dict(b_layout='grouped', c_layout='invariant', options='all', batch=2),
    dict(b_layout='invariant', c_layout='shared', options='gate_bias'),
    dict(b_layout='grouped', c_layout='grouped', options='plain', b_groups=4, c_groups=2),
]


def test_triton_kernels_match_reference_under_interpreter():
    pytest.importorskip('triton')
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    env = dict(os.environ, TRITON_INTERPRET='1', OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join([root, os.environ.get('PYTHONPATH', '')]))
    result = subprocess.run([sys.executable, osp.abspath(__file__)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.strip().endswith(f'{len(CASES) + 3} checks passed')


def _main():
    assert os.environ.get('TRITON_INTERPRET') == '1'
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    import test_selective_scan as base

    from mmfusion.ops.selective_scan import selective_scan, selective_scan_reference, triton_scan

    triton_scan._CHUNK = 4  # L = 9: three chunks, the last one partial

    def triton_fn(**kwargs):
        return selective_scan(**kwargs, backend='triton')

    def check(args, rtol=base.RTOL, what=''):
        outs, grads = base._run(triton_fn, args)
        ref_outs, ref_grads = base._run(selective_scan_reference, args)
        for i, (o, r) in enumerate(zip(outs, ref_outs)):
            assert o.shape == r.shape and o.dtype == r.dtype, (what, i, o.dtype, r.dtype)
            base._assert_rel_close(o.float(), r.float(), rtol, what=f'{what} output {i}')
        for name, g in grads.items():
            assert g is not None and g.dtype == args[name].dtype, (what, name)
            base._assert_rel_close(g.float(), ref_grads[name].float(), rtol,
                                   what=f'{what} grad of {name}')

    count = 0
    for case in CASES:
        sizes = {k: v for k, v in case.items() if k != 'options'}
        args = base._inputs(**{'batch': 1, 'seqlen': 9, **sizes},
                            options=base.OPTIONS[case['options']])
        check(args, what=str(case))
        count += 1
    # The last state's gradient enters the adjoint recurrence.
    args = base._inputs(batch=2, seqlen=9, b_layout='grouped', c_layout='shared',
                        options=base.OPTIONS['all'])
    grads = []
    for fn in (triton_fn, selective_scan_reference):
        leaves = {k: v.detach().clone().requires_grad_(True)
                  for k, v in base._tensors(args).items()}
        out, last = fn(**{**args, **leaves})
        gen = torch.Generator().manual_seed(2)
        ((out * torch.randn(out.shape, generator=gen)).sum() +
         (last * torch.randn(last.shape, generator=gen)).sum()).backward()
        grads.append({k: v.grad for k, v in leaves.items()})
    for name, g in grads[0].items():
        base._assert_rel_close(g, grads[1][name], what=f'last-state grad of {name}')
    count += 1
    # Non-contiguous (B, D, L) views and a strided B, as Mamba passes them.
    args = base._inputs(batch=1, seqlen=9, options=base.OPTIONS['all'])
    for name in ('u', 'delta', 'z'):
        args[name] = args[name].transpose(1, 2).contiguous().transpose(1, 2)
    args['B'] = torch.cat([args['B'], args['B']], dim=-1)[..., ::2]
    check(args, what='non-contiguous')
    count += 1
    # Low-precision inputs, fp32 state: the reference on the same rounded inputs.
    for dtype in (torch.bfloat16, torch.float16):
        args = base._inputs(batch=1, seqlen=9, b_layout='grouped', c_layout='invariant',
                            options=base.OPTIONS['all'])
        low = {k: (v.to(dtype) if isinstance(v, torch.Tensor) else v) for k, v in args.items()}
        out, last = triton_fn(**low)
        assert out.dtype == dtype and last.dtype == torch.float32
        up = {k: (v.float() if isinstance(v, torch.Tensor) else v) for k, v in low.items()}
        ref, ref_last = selective_scan_reference(**up)
        base._assert_rel_close(out.float(), ref.to(dtype).float(), rtol=1e-2, what=str(dtype))
        base._assert_rel_close(last, ref_last, what=f'{dtype} last state')
    check(low, rtol=2e-2, what='float16')
    count += 1
    print(f'{count} checks passed')


if __name__ == '__main__':
    _main()
