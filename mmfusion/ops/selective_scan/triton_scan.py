"""Selective scan as Triton kernels (forward and recomputing backward), for CUDA tensors.

Same recurrence, arguments and results as :func:`mmfusion.ops.selective_scan.selective_scan`
(shapes: see :mod:`mmfusion.ops.selective_scan.shapes`). Imported only when this backend is
used: importing it imports ``triton``. Under ``TRITON_INTERPRET=1`` (set before triton is
imported) the same kernels run on CPU tensors through Triton's interpreter, which is how the
tests check them without a GPU.

Kernels
-------
One program per (batch element, block of ``BLOCK_D`` channels) walks along L; its state, a
(BLOCK_D, N) tile in fp32, stays in registers. Inputs of any float dtype are read and upcast to
fp32; the output is written in ``u.dtype``, the last state in fp32.

- Forward: per step, ``dt = softplus(delta + bias)``, ``h = exp(dt * A) * h + dt * u * B_t``,
  ``y = sum_n C_t * h (+ D u)``, gated by ``silu(z)``. The state at every chunk start
  (``_CHUNK`` steps) is stored: (B, L / _CHUNK, D, N) fp32, the only tensor kept for backward
  besides the inputs.
- Backward: chunks in reverse; per chunk the states are recomputed from the chunk's start state
  into a scratch buffer (B, D, _CHUNK, N) and the adjoint recurrence runs last step first
  (formulas in :mod:`mmfusion.ops.selective_scan.torch_scan`, "Backward"). Gradients of u,
  delta and z are written per element; those of B and C (time-varying) are summed over the
  block's channels and added atomically per step (a block never straddles two groups); those of
  A, D, delta_bias and a time-invariant B / C are accumulated in registers over L and written
  per batch element, then summed over the batch.

B and C each keep their own layout: time-invariant (D, N) is loaded once as a tile; (B, N, L)
and (B, G, N, L) are read as one (N,) vector per step, the group of the block's channels
selected by a stride (0 for the shared layout).
"""
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from .shapes import ScanOutput, check_inputs

__all__ = ['selective_scan_triton']

# Steps between saved chunk-start states; also the length of the backward's scratch.
_CHUNK = 64
# Channels per program at most (fewer where a group of B / C has fewer channels).
_MAX_BLOCK_D = 16


def selective_scan_triton(u: Tensor,
                          delta: Tensor,
                          A: Tensor,
                          B: Tensor,
                          C: Tensor,
                          D: Optional[Tensor] = None,
                          z: Optional[Tensor] = None,
                          delta_bias: Optional[Tensor] = None,
                          delta_softplus: bool = False,
                          return_last_state: bool = False) -> ScanOutput:
    """Selective scan by the Triton kernels (see the module docstring).

    Args and returns: as :func:`mmfusion.ops.selective_scan.selective_scan`. Every gradient is
    computed by the recomputing backward kernel (the last state's gradient included).

    Raises:
        ValueError: If a shape is inconsistent, or the tensors are not all on ``u``'s device.
        NotImplementedError: If an input is complex.
    """
    check_inputs(u, delta, A, B, C, D, z, delta_bias)
    for name, t in dict(delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias).items():
        if t is not None and t.device != u.device:
            raise ValueError(f'{name} is on {t.device}, u on {u.device}')
    out, last = _TritonScan.apply(delta_softplus, u, delta, A, B, C, D, z, delta_bias)
    return (out, last) if return_last_state else out


class _TritonScan(torch.autograd.Function):

    @staticmethod
    def forward(ctx, delta_softplus, u, delta, A, B, C, D, z, delta_bias):
        batch, dim, seqlen = u.shape
        dstate = A.shape[1]
        B, C = B.contiguous(), C.contiguous()  # their gradients are accumulated in this layout
        f32 = dict(dtype=torch.float32, device=u.device)
        out = torch.empty(u.shape, dtype=u.dtype, device=u.device)
        last = torch.empty(batch, dim, dstate, **f32)
        starts = torch.empty(batch, triton.cdiv(seqlen, _CHUNK), dim, dstate, **f32)
        block_d = _block_channels(dim, B, C)
        grid = (batch, triton.cdiv(dim, block_d))
        _forward_kernel[grid](
            u, delta, A, B, C, _or(D, u), _or(z, u), _or(delta_bias, u), out, last, starts,
            dim, seqlen, dstate, *u.stride(), *delta.stride(), *_strides3(z), *A.stride(),
            *_projection_strides(B, dim), *_projection_strides(C, dim), *out.stride(),
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
            SOFTPLUS=delta_softplus, B_VARYING=B.dim() > 2, C_VARYING=C.dim() > 2,
            CHUNK=_CHUNK, BLOCK_D=block_d, BLOCK_N=max(2, triton.next_power_of_2(dstate)))
        ctx.delta_softplus = delta_softplus
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, starts)
        ctx.set_materialize_grads(False)
        return out, last

    @staticmethod
    def backward(ctx, grad_out, grad_last):
        u, delta, A, B, C, D, z, delta_bias, starts = ctx.saved_tensors
        batch, dim, seqlen = u.shape
        dstate = A.shape[1]
        f32 = dict(dtype=torch.float32, device=u.device)
        if grad_out is None:
            grad_out = torch.zeros_like(u)
        grad_u = torch.empty(u.shape, **f32)
        grad_delta = torch.empty(u.shape, **f32)
        grad_z = torch.empty(u.shape, **f32) if z is not None else grad_u
        grad_A = torch.empty(batch, dim, dstate, **f32)  # per batch element, summed below
        grad_D = torch.empty(batch, dim, **f32)
        grad_bias = torch.empty(batch, dim, **f32)
        # Time-varying: atomically accumulated in place; time-invariant: per batch element.
        grad_B = torch.zeros(B.shape if B.dim() > 2 else (batch, ) + B.shape, **f32)
        grad_C = torch.zeros(C.shape if C.dim() > 2 else (batch, ) + C.shape, **f32)
        scratch = torch.empty(batch, dim, _CHUNK, dstate, **f32)
        block_d = _block_channels(dim, B, C)
        grid = (batch, triton.cdiv(dim, block_d))
        _backward_kernel[grid](
            u, delta, A, B, C, _or(D, u), _or(z, u), _or(delta_bias, u), starts, scratch,
            grad_out, _or(grad_last, u), grad_u, grad_delta, grad_z, grad_A, grad_B, grad_C,
            grad_D, grad_bias, dim, seqlen, dstate, *u.stride(), *delta.stride(),
            *_strides3(z), *A.stride(), *_projection_strides(B, dim),
            *_projection_strides(C, dim), *grad_out.stride(),
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
            HAS_GRAD_LAST=grad_last is not None, SOFTPLUS=ctx.delta_softplus,
            B_VARYING=B.dim() > 2, C_VARYING=C.dim() > 2, CHUNK=_CHUNK, BLOCK_D=block_d,
            BLOCK_N=max(2, triton.next_power_of_2(dstate)))
        grads = (grad_u, grad_delta, grad_A.sum(0), _projection_grad(grad_B, B),
                 _projection_grad(grad_C, C), grad_D.sum(0), grad_z, grad_bias.sum(0))
        inputs = (u, delta, A, B, C, D, z, delta_bias)
        needs = ctx.needs_input_grad[1:]
        return (None, ) + tuple(
            g.to(t.dtype) if need else None for g, t, need in zip(grads, inputs, needs))


def _or(t: Optional[Tensor], placeholder: Tensor) -> Tensor:
    """``t``, or a placeholder pointer for an absent optional input (never read)."""
    return placeholder if t is None else t


def _strides3(t: Optional[Tensor]) -> Tuple[int, int, int]:
    return (0, 0, 0) if t is None else t.stride()


def _projection_strides(P: Tensor, dim: int) -> Tuple[int, int, int, int, int]:
    """(batch, group or channel, state, step) strides of B or C and channels per group.

    (D, N): the channel stride stands in the group slot with one channel per "group";
    (B, N, L): one group of D channels (stride 0); (B, G, N, L): D // G channels per group.
    """
    if P.dim() == 2:
        return 0, P.stride(0), P.stride(1), 0, 1
    if P.dim() == 3:
        return P.stride(0), 0, P.stride(1), P.stride(2), dim
    return P.stride(0), P.stride(1), P.stride(2), P.stride(3), dim // P.shape[1]


def _block_channels(dim: int, B: Tensor, C: Tensor) -> int:
    """Channels per program: a power of two <= _MAX_BLOCK_D that divides the channels per group
    of every grouped B / C (so a block never straddles two groups)."""
    block = _MAX_BLOCK_D
    for P in (B, C):
        if P.dim() == 4:
            per_group = dim // P.shape[1]
            block = min(block, per_group & -per_group)  # largest power of two dividing it
    return max(1, min(block, triton.next_power_of_2(dim)))


def _projection_grad(grad: Tensor, P: Tensor) -> Tensor:
    """Gradient of B or C in its layout (time-invariant ones summed over the batch)."""
    return grad if P.dim() > 2 else grad.sum(0)


@triton.jit
def _softplus(x):
    """torch's softplus (threshold 20); log1p(e) as log(w) * e / (w - 1), w = 1 + e."""
    e = tl.exp(tl.minimum(x, 20.0))
    w = 1.0 + e
    log1p = tl.where(w == 1.0, e, tl.log(w) * e / (w - 1.0))
    return tl.where(x > 20.0, x, log1p)


@triton.jit
def _per_channel(ptr, d, d_ok, PRESENT: tl.constexpr, BLOCK_D: tl.constexpr):
    """(BLOCK_D,) fp32 values of a per-channel vector (D, delta_bias); zeros when absent."""
    values = tl.zeros((BLOCK_D, ), tl.float32)
    if PRESENT:
        values = tl.load(ptr + d, mask=d_ok, other=0.0).to(tl.float32)
    return values


@triton.jit
def _invariant_tile(ptr, d, n, s_g, s_n, dn_ok, VARYING: tl.constexpr, BLOCK_D: tl.constexpr,
                    BLOCK_N: tl.constexpr):
    """(BLOCK_D, BLOCK_N) fp32 tile of a time-invariant B or C; zeros when it varies in time
    (the kernels then read the block's group's (N,) row per step)."""
    tile = tl.zeros((BLOCK_D, BLOCK_N), tl.float32)
    if not VARYING:
        tile = tl.load(ptr + d[:, None] * s_g + n[None, :] * s_n, mask=dn_ok,
                       other=0.0).to(tl.float32)
    return tile


@triton.jit
def _forward_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, out_ptr,
                    last_ptr, starts_ptr, dim, seqlen, dstate, su_b, su_d, su_l, sdt_b, sdt_d,
                    sdt_l, sz_b, sz_d, sz_l, sA_d, sA_n, sB_b, sB_g, sB_n, sB_l, B_per_group,
                    sC_b, sC_g, sC_n, sC_l, C_per_group, so_b, so_d, so_l,
                    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                    SOFTPLUS: tl.constexpr, B_VARYING: tl.constexpr, C_VARYING: tl.constexpr,
                    CHUNK: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
    b = tl.program_id(0)
    d0 = tl.program_id(1) * BLOCK_D
    d = d0 + tl.arange(0, BLOCK_D)
    n = tl.arange(0, BLOCK_N)
    d_ok = d < dim
    dn_ok = d_ok[:, None] & (n < dstate)[None, :]
    A = tl.load(A_ptr + d[:, None] * sA_d + n[None, :] * sA_n, mask=dn_ok, other=0.0)
    A = A.to(tl.float32)
    bias = _per_channel(bias_ptr, d, d_ok, HAS_BIAS, BLOCK_D)
    skip = _per_channel(D_ptr, d, d_ok, HAS_D, BLOCK_D)
    B_tile = _invariant_tile(B_ptr, d, n, sB_g, sB_n, dn_ok, B_VARYING, BLOCK_D, BLOCK_N)
    C_tile = _invariant_tile(C_ptr, d, n, sC_g, sC_n, dn_ok, C_VARYING, BLOCK_D, BLOCK_N)
    B_row = B_ptr + b * sB_b + (d0 // B_per_group) * sB_g + n * sB_n
    C_row = C_ptr + b * sC_b + (d0 // C_per_group) * sC_g + n * sC_n
    n_ok = n < dstate
    h = tl.zeros((BLOCK_D, BLOCK_N), tl.float32)
    starts = starts_ptr + ((b * tl.cdiv(seqlen, CHUNK)) * dim + d[:, None]) * dstate + n[None, :]
    for t0 in range(0, seqlen, CHUNK):
        tl.store(starts + (t0 // CHUNK) * dim * dstate, h, mask=dn_ok)
        for t in range(t0, tl.minimum(t0 + CHUNK, seqlen)):
            x = tl.load(delta_ptr + b * sdt_b + d * sdt_d + t * sdt_l, mask=d_ok, other=0.0)
            x = x.to(tl.float32) + bias
            dt = x
            if SOFTPLUS:
                dt = _softplus(x)
            u = tl.load(u_ptr + b * su_b + d * su_d + t * su_l, mask=d_ok, other=0.0)
            u = u.to(tl.float32)
            B_t = B_tile
            if B_VARYING:
                B_t = tl.load(B_row + t * sB_l, mask=n_ok, other=0.0).to(tl.float32)[None, :]
            C_t = C_tile
            if C_VARYING:
                C_t = tl.load(C_row + t * sC_l, mask=n_ok, other=0.0).to(tl.float32)[None, :]
            h = tl.exp(dt[:, None] * A) * h + (dt * u)[:, None] * B_t
            y = tl.sum(h * C_t, axis=1) + skip * u
            if HAS_Z:
                zt = tl.load(z_ptr + b * sz_b + d * sz_d + t * sz_l, mask=d_ok, other=0.0)
                zt = zt.to(tl.float32)
                y = y * zt * tl.sigmoid(zt)
            tl.store(out_ptr + b * so_b + d * so_d + t * so_l,
                     y.to(out_ptr.dtype.element_ty), mask=d_ok)
    tl.store(last_ptr + (b * dim + d[:, None]) * dstate + n[None, :], h, mask=dn_ok)


@triton.jit
def _backward_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, starts_ptr,
                     scratch_ptr, gout_ptr, glast_ptr, gu_ptr, gdelta_ptr, gz_ptr, gA_ptr,
                     gB_ptr, gC_ptr, gD_ptr, gbias_ptr, dim, seqlen, dstate, su_b, su_d, su_l,
                     sdt_b, sdt_d, sdt_l, sz_b, sz_d, sz_l, sA_d, sA_n, sB_b, sB_g, sB_n, sB_l,
                     B_per_group, sC_b, sC_g, sC_n, sC_l, C_per_group, sg_b, sg_d, sg_l,
                     HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                     HAS_GRAD_LAST: tl.constexpr, SOFTPLUS: tl.constexpr,
                     B_VARYING: tl.constexpr, C_VARYING: tl.constexpr, CHUNK: tl.constexpr,
                     BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
    b = tl.program_id(0)
    d0 = tl.program_id(1) * BLOCK_D
    d = d0 + tl.arange(0, BLOCK_D)
    n = tl.arange(0, BLOCK_N)
    d_ok = d < dim
    n_ok = n < dstate
    dn_ok = d_ok[:, None] & n_ok[None, :]
    A = tl.load(A_ptr + d[:, None] * sA_d + n[None, :] * sA_n, mask=dn_ok, other=0.0)
    A = A.to(tl.float32)
    bias = _per_channel(bias_ptr, d, d_ok, HAS_BIAS, BLOCK_D)
    skip = _per_channel(D_ptr, d, d_ok, HAS_D, BLOCK_D)
    B_tile = _invariant_tile(B_ptr, d, n, sB_g, sB_n, dn_ok, B_VARYING, BLOCK_D, BLOCK_N)
    C_tile = _invariant_tile(C_ptr, d, n, sC_g, sC_n, dn_ok, C_VARYING, BLOCK_D, BLOCK_N)
    B_row = b * sB_b + (d0 // B_per_group) * sB_g + n * sB_n
    C_row = b * sC_b + (d0 // C_per_group) * sC_g + n * sC_n
    state = (b * dim + d[:, None]) * dstate + n[None, :]  # offsets of a (B, D, N) tensor
    scratch = scratch_ptr + (b * dim + d[:, None]) * CHUNK * dstate + n[None, :]
    starts = starts_ptr + ((b * tl.cdiv(seqlen, CHUNK)) * dim + d[:, None]) * dstate + n[None, :]
    grad_h = tl.zeros((BLOCK_D, BLOCK_N), tl.float32)  # exp(dt_{t+1} A) * g_h_{t+1}
    if HAS_GRAD_LAST:
        grad_h = tl.load(glast_ptr + state, mask=dn_ok, other=0.0).to(tl.float32)
    grad_A = tl.zeros((BLOCK_D, BLOCK_N), tl.float32)
    grad_B_tile = tl.zeros((BLOCK_D, BLOCK_N), tl.float32)
    grad_C_tile = tl.zeros((BLOCK_D, BLOCK_N), tl.float32)
    grad_D = tl.zeros((BLOCK_D, ), tl.float32)
    grad_bias = tl.zeros((BLOCK_D, ), tl.float32)
    num_chunks = tl.cdiv(seqlen, CHUNK)
    for k in range(0, num_chunks):
        c = num_chunks - 1 - k
        t0 = c * CHUNK
        steps = tl.minimum(CHUNK, seqlen - t0)
        # Recompute the chunk's states into the scratch buffer.
        h0 = tl.load(starts + c * dim * dstate, mask=dn_ok, other=0.0)
        h = h0
        for i in range(0, steps):
            t = t0 + i
            x = tl.load(delta_ptr + b * sdt_b + d * sdt_d + t * sdt_l, mask=d_ok, other=0.0)
            x = x.to(tl.float32) + bias
            dt = x
            if SOFTPLUS:
                dt = _softplus(x)
            u = tl.load(u_ptr + b * su_b + d * su_d + t * su_l, mask=d_ok, other=0.0)
            B_t = B_tile
            if B_VARYING:
                B_t = tl.load(B_ptr + B_row + t * sB_l, mask=n_ok, other=0.0)
                B_t = B_t.to(tl.float32)[None, :]
            h = tl.exp(dt[:, None] * A) * h + (dt * u.to(tl.float32))[:, None] * B_t
            tl.store(scratch + i * dstate, h, mask=dn_ok)
        tl.debug_barrier()  # the states stored above are read back below
        # Adjoint recurrence, last step first.
        for j in range(0, steps):
            i = steps - 1 - j
            t = t0 + i
            x = tl.load(delta_ptr + b * sdt_b + d * sdt_d + t * sdt_l, mask=d_ok, other=0.0)
            x = x.to(tl.float32) + bias
            dt = x
            if SOFTPLUS:
                dt = _softplus(x)
            u = tl.load(u_ptr + b * su_b + d * su_d + t * su_l, mask=d_ok, other=0.0)
            u = u.to(tl.float32)
            B_t = B_tile
            if B_VARYING:
                B_t = tl.load(B_ptr + B_row + t * sB_l, mask=n_ok, other=0.0)
                B_t = B_t.to(tl.float32)[None, :]
            C_t = C_tile
            if C_VARYING:
                C_t = tl.load(C_ptr + C_row + t * sC_l, mask=n_ok, other=0.0)
                C_t = C_t.to(tl.float32)[None, :]
            h = tl.load(scratch + i * dstate, mask=dn_ok, other=0.0)
            h_prev = tl.load(scratch + tl.maximum(i - 1, 0) * dstate, mask=dn_ok, other=0.0)
            h_prev = tl.where(i > 0, h_prev, h0)
            g = tl.load(gout_ptr + b * sg_b + d * sg_d + t * sg_l, mask=d_ok, other=0.0)
            g = g.to(tl.float32)
            grad_y = g
            if HAS_Z:
                zt = tl.load(z_ptr + b * sz_b + d * sz_d + t * sz_l, mask=d_ok, other=0.0)
                zt = zt.to(tl.float32)
                sig = tl.sigmoid(zt)
                y = tl.sum(h * C_t, axis=1) + skip * u
                tl.store(gz_ptr + (b * dim + d) * seqlen + t,
                         g * y * sig * (1.0 + zt * (1.0 - sig)), mask=d_ok)
                grad_y = g * zt * sig
            grad_D += grad_y * u
            grad_h += C_t * grad_y[:, None]
            grad_C_step = h * grad_y[:, None]
            if C_VARYING:
                tl.atomic_add(gC_ptr + C_row + t * sC_l, tl.sum(grad_C_step, axis=0), mask=n_ok)
            else:
                grad_C_tile += grad_C_step
            decay = tl.exp(dt[:, None] * A)
            q = grad_h * h_prev * decay
            grad_A += q * dt[:, None]
            grad_B_step = grad_h * (dt * u)[:, None]
            if B_VARYING:
                tl.atomic_add(gB_ptr + B_row + t * sB_l, tl.sum(grad_B_step, axis=0), mask=n_ok)
            else:
                grad_B_tile += grad_B_step
            grad_dtu = tl.sum(grad_h * B_t, axis=1)
            grad_dt = tl.sum(q * A, axis=1) + grad_dtu * u
            tl.store(gu_ptr + (b * dim + d) * seqlen + t, grad_dtu * dt + grad_y * skip,
                     mask=d_ok)
            if SOFTPLUS:
                grad_dt = tl.where(x > 20.0, grad_dt, grad_dt * tl.sigmoid(x))
            tl.store(gdelta_ptr + (b * dim + d) * seqlen + t, grad_dt, mask=d_ok)
            grad_bias += grad_dt
            grad_h = decay * grad_h
    tl.store(gA_ptr + state, grad_A, mask=dn_ok)
    if not B_VARYING:
        tl.store(gB_ptr + state, grad_B_tile, mask=dn_ok)
    if not C_VARYING:
        tl.store(gC_ptr + state, grad_C_tile, mask=dn_ok)
    tl.store(gD_ptr + b * dim + d, grad_D, mask=d_ok)
    tl.store(gbias_ptr + b * dim + d, grad_bias, mask=d_ok)
