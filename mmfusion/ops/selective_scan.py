"""Selective scan, the S6 recurrence of Mamba, with a fast pure-PyTorch path for CPU.

Source: Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces",
arXiv 2312.00752, Sec. 3 and Alg. 2. The signature and the semantics are those of
``selective_scan_fn`` in mamba-ssm (``mamba_ssm.ops.selective_scan_interface``) and of its
reference ``selective_scan_ref``, restricted to a real-valued ``A``.

Shape shorthand (used in every docstring of this module)
--------------------------------------------------------
    B: batch size                  D: number of channels (the model width fed to the scan)
    L: sequence length             N: state size per channel (``d_state``)
    G: number of groups sharing one input-dependent B / C; D % G == 0 and channel ``d`` uses
       group ``d // (D // G)``

Recurrence, for every batch element, channel d and state index n (``delta`` taken after
``delta_bias`` and the optional softplus)::

    h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t          h_{-1} = 0
    y_t = sum_n C_t[n] * h_t[n]  (+ D * u_t)                        out = y * silu(z)

Dispatch: :func:`selective_scan` hands CUDA tensors to mamba-ssm's ``selective_scan_fn`` when
that package imports (lazily, at the first CUDA call); everything else, and CUDA without
mamba-ssm, runs :func:`selective_scan_torch`. :func:`selective_scan_reference` is a plain
step-by-step loop over L, kept for tests and benchmarks. During ONNX export
(``torch.onnx.is_in_onnx_export()``) :func:`selective_scan` runs :func:`selective_scan_export`
instead, the same recurrence written as one TorchScript loop, which exports to an ONNX ``Loop``
(the blocked scan uses in-place ops, ``copy_`` and ``exp2`` that the exporter cannot translate,
and its Python loops would be unrolled into a graph fixed to one sequence length).

Algorithm of :func:`selective_scan_torch`
-----------------------------------------
The direct way (mamba-ssm's reference, and :func:`selective_scan_reference`) materialises
``exp(delta * A)`` and ``delta * B * u`` as (B, D, L, N) tensors (840 MB each in fp32 for B=2,
D=1024, L=6400, N=16) and then walks over L, reading a strided (B, D, N) slice of each per step:
its cost is memory traffic (and page faults), not arithmetic. Here the same recurrence is
evaluated step by step too, but:

1. Layout: delta and u are transposed once to time-major (L, B, D) (a 2-D transpose, which
   torch runs as a cache-blocked copy); bias, softplus and ``delta * u`` are then applied chunk
   by chunk (about 2 MB of steps) in that layout. One step's state is a contiguous
   (B, G, N, D // G) slab with the channels innermost, so every elementwise op runs unit-stride
   over D // G.
2. Blocking: ``exp(delta * A)`` and ``delta * B * u`` are built for ``block_len`` steps at a
   time (about 2 MB, so they stay in cache), the block is scanned with one ``addcmul`` per step
   (``h_t = a_t * h_{t-1} + b_t``) and its states are contracted with C by one batched matmul.
   Nothing of size (B, D, L, N) is ever allocated (except by autograd, which saves the
   per-step tensors). Without autograd the block buffers are reused and the states overwrite
   them in place; with autograd (or under ``torch.jit.trace``) only functional ops are used.
3. ``exp(x)`` is computed as ``exp2(x * log2(e))`` with ``log2(e)`` folded into A: the same
   function, but torch's CPU exp2 kernel is several times faster than its exp.
4. Two-level scan, only where one step's state (B * D * N elements) is so small that eager
   PyTorch's per-op overhead would dominate each step: the sequence is cut into
   ``num_segments`` equal segments, scanned simultaneously from a zero state (the segment axis
   joins the batch axis). A short sequential pass over the segments gives each segment's true
   initial state ``h0`` (``h0_{k+1} = exp(A * Delta_k) * h0_k + hend_k``, ``Delta_k`` the sum
   of delta over segment k and ``hend_k`` its end state from zero), and every output of segment
   k gets the correction ``sum_n C_t[n] * exp(A[n] * S_t) * h0_k[n]``, ``S_t`` the cumulative
   sum of delta inside the segment up to step t.

Why it is exact: steps 1-3 evaluate the reference's recurrence operation for operation (in
another memory order), and the two-level form is an identity: the recurrence is linear in h,
so a segment's state is its state started from zero plus the product of its step decays times
``h0``, and because A does not depend on t that product ``prod_i exp(delta_i * A)`` equals
``exp(A * S_t)``. Nothing is truncated or approximated; results differ from the step-by-step
loop by fp32 rounding only (about 1e-6 relative in the tests). Numerics: with Mamba's
``A <= 0`` and ``delta >= 0`` every exponent is ``<= 0``, so no exponential overflows however
large ``delta * |A|`` gets (factors underflow to 0 as in the loop), and no ``exp(+S)`` /
``exp(-S)`` pair is ever formed. All arithmetic is fp32 (inputs are upcast, as the reference
does) and the output is cast back to ``u.dtype``.

Gradients flow through plain autograd (no custom backward): every input that requires grad
gets one. Measured speed-ups over the step-by-step loop: see
``tools/analysis_tools/benchmark_selective_scan.py``.
"""
import functools
import math
import warnings
from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'selective_scan', 'selective_scan_torch', 'selective_scan_reference', 'selective_scan_export'
]

# Elements of the (steps, B, D, N) blocks built at a time (2 MB of fp32): cache-resident.
_BLOCK_ELEMS = 1 << 19
# Elements of the (steps, B, D) inputs transposed to the scan's layout at a time.
_CHUNK_ELEMS = 1 << 19
# Two-level scan only when one step's state (B * D * N elements) is at most this small: then
# eager PyTorch's per-op overhead dominates a step, which outweighs the correction pass. The
# segment count makes a step cover about _SEGMENTED_STEP_ELEMS elements, with segments of at
# least _MIN_SEGMENT_LEN steps.
_SEGMENT_MAX_STEP_ELEMS = 1 << 10
_SEGMENTED_STEP_ELEMS = 1 << 13
_MIN_SEGMENT_LEN = 32

ScanOutput = Union[Tensor, Tuple[Tensor, Tensor]]


def selective_scan(u: Tensor,
                   delta: Tensor,
                   A: Tensor,
                   B: Tensor,
                   C: Tensor,
                   D: Optional[Tensor] = None,
                   z: Optional[Tensor] = None,
                   delta_bias: Optional[Tensor] = None,
                   delta_softplus: bool = False,
                   return_last_state: bool = False) -> ScanOutput:
    """Selective scan (Mamba S6), dispatching to mamba-ssm's CUDA kernel when possible.

    Args:
        u (Tensor): Input, (B, D, L).
        delta (Tensor): Step sizes before bias/softplus, (B, D, L).
        A (Tensor): Real state matrix (diagonal per channel), (D, N); Mamba uses A < 0.
        B (Tensor): Input projection: (D, N) time-invariant, (B, N, L), or grouped (B, G, N, L).
        C (Tensor): Output projection, same layouts as ``B`` (independently of it).
        D (Tensor, optional): Skip connection weight, (D,).
        z (Tensor, optional): Gate, (B, D, L); the output is multiplied by ``silu(z)``.
        delta_bias (Tensor, optional): Added to ``delta`` (before the softplus), (D,).
        delta_softplus (bool): Apply softplus to ``delta + delta_bias``. Defaults to False.
        return_last_state (bool): Also return the state after the last step. Defaults to False.

    Returns:
        Tensor | tuple[Tensor, Tensor]: The output (B, D, L) in ``u.dtype``; with
        ``return_last_state`` also the last state (B, D, N) in fp32 (as mamba-ssm returns it).

    Raises:
        ValueError: If a shape is inconsistent (the message names the argument and its shape).
        NotImplementedError: If ``A`` (or another input) is complex.
    """
    _check_inputs(u, delta, A, B, C, D, z, delta_bias)
    if torch.onnx.is_in_onnx_export():
        return selective_scan_export(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                     return_last_state)
    if u.is_cuda:
        cuda_fn = _load_cuda_selective_scan()
        if cuda_fn is not None:
            return cuda_fn(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias,
                           delta_softplus=delta_softplus, return_last_state=return_last_state)
    return selective_scan_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                return_last_state)


@functools.lru_cache(maxsize=None)
def _load_cuda_selective_scan():
    """mamba-ssm's ``selective_scan_fn``, or None if it cannot be imported (imported once)."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # ImportError, or OSError/RuntimeError from its compiled extension
        return None
    return selective_scan_fn


def selective_scan_torch(u: Tensor,
                         delta: Tensor,
                         A: Tensor,
                         B: Tensor,
                         C: Tensor,
                         D: Optional[Tensor] = None,
                         z: Optional[Tensor] = None,
                         delta_bias: Optional[Tensor] = None,
                         delta_softplus: bool = False,
                         return_last_state: bool = False,
                         *,
                         num_segments: Optional[int] = None,
                         block_len: Optional[int] = None) -> ScanOutput:
    """Pure-PyTorch selective scan: blocked, optionally two-level (see the module docstring).

    Args:
        u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state: As in
            :func:`selective_scan`.
        num_segments (int, optional): Segments scanned in parallel (two-level scan). Default:
            chosen from the sizes (1, i.e. a single-level scan, unless B * D * N <= 1024).
        block_len (int, optional): Steps materialised per block. Default: about 2**19
            elements per block.

    Returns:
        Tensor | tuple[Tensor, Tensor]: As :func:`selective_scan`.

    Raises:
        ValueError: If a shape is inconsistent or ``num_segments`` / ``block_len`` < 1.
        NotImplementedError: If an input is complex.
    """
    batch, dim, seqlen, dstate = _check_inputs(u, delta, A, B, C, D, z, delta_bias)
    num_segments, seg_len, block_len, chunk_len = _plan(batch, dim, seqlen, dstate, num_segments,
                                                        block_len)
    # Autograd and tracing (ONNX export) get purely functional ops; otherwise buffers are reused.
    functional = torch.jit.is_tracing() or torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (u, delta, A, B, C, D, z, delta_bias))

    groups = _common_groups(B, C)
    rows = num_segments * batch  # B' in the helpers: every (segment, batch element) pair
    # Channels innermost: one step's state is (B', G, N, D // G), contiguous over D // G.
    A2 = (A.float() * math.log2(math.e)).view(groups, dim // groups, dstate)
    A2 = A2.transpose(1, 2).contiguous()
    Bt = _projection_steps(B, num_segments, seg_len, groups)
    Ct = _projection_steps(C, num_segments, seg_len, groups)
    delta_steps = _time_major(delta, num_segments, seg_len)  # (seg_len, B', D)
    u_steps = _time_major(u, num_segments, seg_len)
    padding = _padding(seqlen, num_segments, seg_len, batch, u.device)

    h = A2.new_zeros((rows, ) + A2.shape)
    workspace = y_steps = None
    if not functional:  # every block is built in (and its states overwrite) the same buffers
        workspace = A2.new_empty((2, min(block_len, seg_len)) + h.shape)
        if num_segments == 1:
            y_steps = A2.new_empty((seg_len, rows, groups, dim // groups))
    ys, dts = [], []
    for start in range(0, seg_len, chunk_len):
        chunk = slice(start, start + chunk_len)
        dt = _chunk_delta(delta_steps[chunk], delta_bias, delta_softplus,
                          None if padding is None else padding[chunk])
        dt = dt.view(dt.shape[0], rows, groups, dim // groups)
        dtu = dt * u_steps[chunk].float().view_as(dt)
        y, h = _scan_chunk(dt, dtu, A2, _at(Bt, chunk), _at(Ct, chunk), h, block_len,
                           workspace, None if y_steps is None else y_steps[chunk])
        ys.append(y)
        dts.append(dt if num_segments > 1 else None)
    if num_segments > 1:
        ys, h = _join_segments(ys, dts, h, A2, Ct, chunk_len, block_len, batch)

    out = _batch_major(torch.cat(ys) if y_steps is None else y_steps, batch, seqlen)
    out = _skip_and_gate(out, u, D, z, inplace=not functional).to(u.dtype)
    if return_last_state:
        return out, h.transpose(-1, -2).reshape(batch, dim, dstate)
    return out


def _plan(batch: int, dim: int, seqlen: int, dstate: int, num_segments: Optional[int],
          block_len: Optional[int]) -> Tuple[int, int, int, int]:
    """Segments, their length, block and chunk lengths (in steps) for the given sizes."""
    for name, value in (('num_segments', num_segments), ('block_len', block_len)):
        if value is not None and value < 1:
            raise ValueError(f'{name} must be >= 1, got {value}')
    step_elems = batch * dim * dstate
    if num_segments is None:
        num_segments = 1
        if step_elems <= _SEGMENT_MAX_STEP_ELEMS:
            num_segments = max(1, min(_SEGMENTED_STEP_ELEMS // step_elems,
                                      seqlen // _MIN_SEGMENT_LEN))
    seg_len = -(-seqlen // min(num_segments, seqlen))
    num_segments = -(-seqlen // seg_len)  # no segment made only of padding
    if block_len is None:
        block_len = max(1, _BLOCK_ELEMS // (step_elems * num_segments))
    # Chunks: the steps converted (bias, softplus, delta * u) at once; whole blocks.
    chunk_len = block_len * max(1, _CHUNK_ELEMS // (num_segments * batch * dim * block_len))
    return num_segments, seg_len, block_len, chunk_len


def _chunk_delta(delta: Tensor, delta_bias: Optional[Tensor], delta_softplus: bool,
                 padding: Optional[Tensor]) -> Tensor:
    """fp32 delta of a chunk, (T, B', D), after bias and softplus; 0 on the padding (where a
    step then leaves the state unchanged)."""
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()
    if delta_softplus:
        delta = F.softplus(delta)
    return delta if padding is None else delta.masked_fill(padding, 0.0)


def _skip_and_gate(y: Tensor, u: Tensor, D: Optional[Tensor], z: Optional[Tensor],
                   inplace: bool) -> Tensor:
    """(y + D * u) * silu(z), (B, D, L) in fp32; ``inplace`` updates ``y`` (no autograd)."""
    if D is not None:
        skip = D.float()[:, None]
        y = y.addcmul_(u, skip) if inplace else torch.addcmul(y, u, skip)
    if z is not None:
        gate = F.silu(z.float())
        y = y.mul_(gate) if inplace else y * gate
    return y


def selective_scan_reference(u: Tensor,
                             delta: Tensor,
                             A: Tensor,
                             B: Tensor,
                             C: Tensor,
                             D: Optional[Tensor] = None,
                             z: Optional[Tensor] = None,
                             delta_bias: Optional[Tensor] = None,
                             delta_softplus: bool = False,
                             return_last_state: bool = False) -> ScanOutput:
    """Step-by-step selective scan: the plain loop over L, for tests and benchmarks.

    Same structure as mamba-ssm's ``selective_scan_ref``: discretise every step at once into
    (B, D, L, N) tensors ``exp(delta * A)`` and ``delta * B * u``, then update the state one
    step at a time and contract it with C. Arguments, returns and errors as
    :func:`selective_scan`.
    """
    batch, dim, seqlen, dstate = _check_inputs(u, delta, A, B, C, D, z, delta_bias)
    dtype_in = u.dtype
    u = u.float()
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    A = A.float()
    B = _per_channel(B.float(), dim)  # (D, N) or (B, D or 1, N, L)
    C = _per_channel(C.float(), dim)

    delta_a = torch.exp(delta[..., None] * A[:, None, :])  # (B, D, L, N)
    b_steps = B[:, None, :] if B.dim() == 2 else B.transpose(-1, -2)
    delta_b_u = (delta * u)[..., None] * b_steps  # (B, D, L, N)
    # unbind: per-step views whose backward is one stack (indexing [:, :, t] would give every
    # step a full-size zero gradient in backward).
    c_steps = [C] * seqlen if C.dim() == 2 else C.unbind(-1)
    h = u.new_zeros(batch, dim, dstate)
    ys = []
    for a_t, bu_t, c_t in zip(delta_a.unbind(2), delta_b_u.unbind(2), c_steps):
        h = a_t * h + bu_t
        ys.append((h * c_t).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + u * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    out = y.to(dtype_in)
    return (out, h) if return_last_state else out


def selective_scan_export(u: Tensor,
                          delta: Tensor,
                          A: Tensor,
                          B: Tensor,
                          C: Tensor,
                          D: Optional[Tensor] = None,
                          z: Optional[Tensor] = None,
                          delta_bias: Optional[Tensor] = None,
                          delta_softplus: bool = False,
                          return_last_state: bool = False) -> ScanOutput:
    """Selective scan for ONNX export: the recurrence as one TorchScript loop over L.

    Traced (``torch.onnx.export(..., dynamo=False)``), the loop becomes one ONNX ``Loop`` whose
    trip count is the sequence length of the input, so an exported model accepts other feature
    map sizes. Per step it forms ``exp(delta_t * A)`` and ``delta_t * B_t * u_t`` for that step
    only (nothing of size (B, D, L, N)); only out-of-place ops that the exporter translates.
    Same semantics as :func:`selective_scan` (results equal to fp32 rounding); slow in eager
    PyTorch (an interpreted loop), so :func:`selective_scan` uses it only while exporting.
    Arguments, returns and errors as :func:`selective_scan`.
    """
    batch, dim, seqlen, dstate = _check_inputs(u, delta, A, B, C, D, z, delta_bias)
    groups = _common_groups(B, C)
    dtype_in = u.dtype
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    # time-major, channels split into groups: (L, B, G, D // G, 1)
    dt = delta.permute(2, 0, 1).reshape(seqlen, batch, groups, dim // groups, 1)
    dtu = (delta * u.float()).permute(2, 0, 1).reshape(seqlen, batch, groups, dim // groups, 1)
    A = A.float().reshape(groups, dim // groups, dstate)
    y, last = _scripted_recurrence()(dt, dtu, A, _export_steps(B, groups, seqlen),
                                     _export_steps(C, groups, seqlen))
    y = y.reshape(seqlen, batch, dim).permute(1, 2, 0)  # (B, D, L)
    if D is not None:
        y = y + u.float() * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    out = y.to(dtype_in)
    if return_last_state:
        return out, last.reshape(batch, dim, dstate)
    return out


def _export_steps(P: Tensor, groups: int, seqlen: int) -> Tensor:
    """B or C per step for :func:`_export_recurrence`: (L, B or 1, G, D // G or 1, N)."""
    P = P.float()
    if P.dim() == 2:  # (D, N), time-invariant
        return P.reshape(1, 1, groups, -1, P.shape[-1]).expand(seqlen, -1, -1, -1, -1)
    if P.dim() == 3:
        P = P[:, None]
    if P.shape[1] != groups:
        P = P.repeat_interleave(groups // P.shape[1], dim=1)
    return P.permute(3, 0, 1, 2).unsqueeze(3)  # (L, B, G, 1, N)


@functools.lru_cache(maxsize=None)
def _scripted_recurrence():
    """:func:`_export_recurrence` compiled by TorchScript (once, at the first export: no cost
    or deprecation warning at import). Scripting keeps its loop a loop when traced."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)  # torch.jit: needed by this exporter
        return torch.jit.script(_export_recurrence)


def _export_recurrence(dt: Tensor, dtu: Tensor, A: Tensor, B: Tensor,
                       C: Tensor) -> Tuple[Tensor, Tensor]:
    """h_t = exp(dt_t * A) * h_{t-1} + dtu_t * B_t; y_t = sum_n C_t[n] * h_t[n].

    Args: dt, dtu (L, B, G, D // G, 1); A (G, D // G, N); B, C as :func:`_export_steps`.
    Returns: y (L, B, G, D // G) and the last state (B, G, D // G, N).
    """
    h = torch.zeros_like(dtu[0] * A)
    ys: List[Tensor] = []
    for t in range(dt.size(0)):
        h = torch.exp(dt[t] * A) * h + dtu[t] * B[t]
        ys.append((h * C[t]).sum(-1))
    return torch.stack(ys), h


def _per_channel(P: Tensor, dim: int) -> Tensor:
    """B or C as (D, N) or (B, D or 1, N, L): groups repeated to their channels."""
    if P.dim() == 3:
        return P[:, None]
    if P.dim() == 4:
        return P.repeat_interleave(dim // P.shape[1], dim=1)
    return P


def _check_inputs(u, delta, A, B, C, D, z, delta_bias) -> Tuple[int, int, int, int]:
    """Validate the shapes; return (B, D, L, N)."""
    args = dict(u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias)
    for name, t in args.items():
        if t is not None and t.is_complex():
            raise NotImplementedError(
                f'selective_scan supports real-valued inputs only, but {name} is {t.dtype} '
                '(complex A / B / C of mamba-ssm are not implemented)')
    if u.dim() != 3 or u.numel() == 0:
        raise ValueError(f'u must be a non-empty (B, D, L) tensor, got shape {tuple(u.shape)}')
    batch, dim, seqlen = u.shape
    _expect_shape('delta', delta, (batch, dim, seqlen), '(B, D, L)')
    if A.dim() != 2 or A.shape[0] != dim or A.shape[1] == 0:
        raise ValueError(f'A must be (D, N) with D={dim} and N >= 1, got shape '
                         f'{tuple(A.shape)}')
    dstate = A.shape[1]
    for name, P in (('B', B), ('C', C)):
        shape = tuple(P.shape)
        if P.dim() == 4:
            ok = (shape[0] == batch and shape[2:] == (dstate, seqlen) and shape[1] >= 1
                  and dim % shape[1] == 0)
        else:
            ok = shape in ((dim, dstate), (batch, dstate, seqlen))
        if not ok:
            raise ValueError(
                f'{name} must be (D, N)=({dim}, {dstate}), (B, N, L)=({batch}, {dstate}, '
                f'{seqlen}) or (B, G, N, L) with D % G == 0, got shape {shape}')
    if D is not None:
        _expect_shape('D', D, (dim,), '(D,)')
    if z is not None:
        _expect_shape('z', z, (batch, dim, seqlen), '(B, D, L)')
    if delta_bias is not None:
        _expect_shape('delta_bias', delta_bias, (dim,), '(D,)')
    return batch, dim, seqlen, dstate


def _expect_shape(name: str, t: Tensor, shape: Tuple[int, ...], spec: str) -> None:
    if tuple(t.shape) != shape:
        raise ValueError(f'{name} must be {spec}={shape}, got shape {tuple(t.shape)}')


def _common_groups(B: Tensor, C: Tensor) -> int:
    """Groups G of the scan's channel layout: lcm of the group counts of B and C (1 if none)."""
    counts = [P.shape[1] if P.dim() == 4 else 1 for P in (B, C) if P.dim() >= 3]
    return math.lcm(*counts) if counts else 1


def _time_major(x: Tensor, num_segments: int, seg_len: int) -> Tensor:
    """(B, D, L) -> (seg_len, S * B, D), row ``t`` holding step ``t`` of every segment (position
    ``k * seg_len + t`` of segment ``k``); L is zero-padded to S * seg_len.

    One 2-D transpose (:func:`_transposed`; a 3-D permute copy is much slower).
    """
    batch, dim, seqlen = x.shape
    if num_segments * seg_len != seqlen:
        x = F.pad(x, (0, num_segments * seg_len - seqlen))
    x = _transposed(x.reshape(batch * dim, -1))  # (S * seg_len, B * D)
    if num_segments == 1:
        return x.view(seg_len, batch, dim)
    x = x.view(num_segments, seg_len, batch, dim).transpose(0, 1)
    return x.reshape(seg_len, num_segments * batch, dim)


def _batch_major(y: Tensor, batch: int, seqlen: int) -> Tensor:
    """Inverse of :func:`_time_major` without the padding: (seg_len, S * B, ...) -> a new
    contiguous (B, D, L)."""
    seg_len, rows = y.shape[:2]
    num_segments = rows // batch
    y = y.reshape(seg_len, num_segments, batch, -1)
    if num_segments > 1:
        y = y.transpose(0, 1)
    y = y.reshape(num_segments * seg_len, -1)[:seqlen]  # (L, B * D)
    return _transposed(y).view(batch, -1, seqlen)


def _transposed(x: Tensor) -> Tensor:
    """``x.t()`` of a contiguous 2-D ``x`` as a new contiguous tensor.

    The copy into a transposed destination is torch's cache-blocked transpose; zero-filling the
    destination first (a parallel fill) spreads the page faults of the fresh memory over all
    threads, which is faster than taking them inside the single-threaded transpose.
    """
    return x.new_zeros(x.shape[::-1]).copy_(x.t())


def _padding(seqlen: int, num_segments: int, seg_len: int, batch: int,
             device: torch.device) -> Optional[Tensor]:
    """Mask of the padded steps in the layout of :func:`_time_major`, (seg_len, S * B, 1), or
    None without padding."""
    if num_segments * seg_len == seqlen:
        return None
    steps = torch.arange(seg_len, device=device)[:, None]
    position = steps + seg_len * torch.arange(num_segments, device=device)
    return (position >= seqlen).repeat_interleave(batch, dim=1)[..., None]


def _segmented(x: Tensor, num_segments: int, seg_len: int) -> Tensor:
    """(B, D, L) -> (B, D, S, seg_len), zero-padded at the end of L."""
    if num_segments * seg_len != x.shape[-1]:
        x = F.pad(x, (0, num_segments * seg_len - x.shape[-1]))
    return x.view(*x.shape[:2], num_segments, seg_len)


def _projection_steps(P: Tensor, num_segments: int, seg_len: int, groups: int) -> Tensor:
    """B or C as (G, N, D // G) if time-invariant, else (seg_len, S * B, G, N) (time-major)."""
    P = P.float()
    if P.dim() == 2:
        return P.view(groups, -1, P.shape[1]).transpose(1, 2).contiguous()
    if P.dim() == 3:
        P = P[:, None]
    if P.shape[1] != groups:
        P = P.repeat_interleave(groups // P.shape[1], dim=1)
    P = _segmented(P.flatten(1, 2), num_segments, seg_len)  # (B, G * N, S, seg_len)
    batch, _, _, steps = P.shape
    P = P.view(batch, groups, -1, num_segments, steps).permute(4, 3, 0, 1, 2)
    return P.reshape(steps, num_segments * batch, groups, -1).contiguous()


def _at(P: Tensor, blk: slice) -> Tensor:
    """The steps ``blk`` of a time-major projection (a time-invariant one is returned as is)."""
    return P if P.dim() == 3 else P[blk]


def _decay(dt: Tensor, A2: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """exp(delta * A), (..., G, N, D // G), computed as exp2(delta * A * log2(e)).

    Args:
        dt (Tensor): delta, (..., G, D // G).
        A2 (Tensor): A * log2(e), (G, N, D // G).
        out (Tensor, optional): Where to write it.

    exp2 is the same function, but torch's CPU kernel for it is several times faster than exp.
    """
    return torch.mul(dt.unsqueeze(-2), A2, out=out).exp2_()


def _contract(states: Tensor, C: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """sum_n C[n] * states[..., n, :]: (T, B', G, N, D // G) -> (T, B', G, D // G).

    ``C`` is (T, B', G, N) (time-varying) or (G, N, D // G) (time-invariant). With ``out``
    (no autograd) the result is written there and ``states`` may be overwritten.
    """
    if C.dim() == 3:
        return torch.sum(torch.mul(states, C, out=None if out is None else states), -2, out=out)
    batched = states.shape[:-2]
    y = torch.bmm(C.reshape(-1, 1, C.shape[-1]), states.reshape(-1, *states.shape[-2:]),
                  out=None if out is None else out.view(-1, 1, out.shape[-1]))
    return y.view(*batched, -1)


def _scan_chunk(dt: Tensor, dtu: Tensor, A2: Tensor, B: Tensor, C: Tensor, h: Tensor,
                block_len: int, workspace: Optional[Tensor] = None,
                out: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """:func:`_scan_block` over a chunk of steps, ``block_len`` steps at a time (writing the
    outputs into ``out`` if given)."""
    ys = []
    for start in range(0, dt.shape[0], block_len):
        blk = slice(start, start + block_len)
        y, h = _scan_block(dt[blk], dtu[blk], A2, _at(B, blk), _at(C, blk), h, workspace,
                           None if out is None else out[blk])
        ys.append(y)
    return (out if out is not None else torch.cat(ys)), h


def _scan_block(dt: Tensor, dtu: Tensor, A2: Tensor, B: Tensor, C: Tensor, h: Tensor,
                workspace: Optional[Tensor] = None,
                out: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Advance the state over one block of T steps, step by step.

    Args:
        dt, dtu (Tensor): delta and delta * u, (T, B', G, D // G).
        A2 (Tensor): A * log2(e), (G, N, D // G).
        B, C (Tensor): This block's projections, (T, B', G, N) or time-invariant (G, N, D // G).
        h (Tensor): State before the block, (B', G, N, D // G).
        workspace (Tensor, optional): Two buffers, (2, >= T, B', G, N, D // G), to build the
            block in without allocating; the states then overwrite the drive. No autograd.
        out (Tensor, optional): Where to write the outputs (only with ``workspace``).

    Returns:
        tuple[Tensor, Tensor]: Outputs (T, B', G, D // G) and the state after the block.
    """
    steps = dt.shape[0]
    decay_out, drive_out = (None, None) if workspace is None else workspace[:, :steps]
    decay = _decay(dt, A2, out=decay_out)  # exp(delta * A)
    B = B if B.dim() == 3 else B.unsqueeze(-1)
    drive = torch.mul(dtu.unsqueeze(-2), B, out=drive_out)  # delta * B * u
    if workspace is not None:
        for decay_t, state_t in zip(decay.unbind(0), drive.unbind(0)):
            h = state_t.addcmul_(decay_t, h)
        h = h.clone()  # a view of the workspace, which _contract and the next block overwrite
        return _contract(drive, C, out), h
    per_step = []
    for decay_t, drive_t in zip(decay.unbind(0), drive.unbind(0)):
        h = torch.addcmul(drive_t, decay_t, h)
        per_step.append(h)
    return _contract(torch.stack(per_step), C), h


def _join_segments(ys, dts, h_end: Tensor, A2: Tensor, Ct: Tensor, chunk_len: int,
                   block_len: int, batch: int):
    """Second level of the scan: carry each segment's true initial state into its outputs.

    Args:
        ys (list[Tensor]): Per chunk, the outputs of the segments scanned from a zero state,
            (T, S * B, G, D // G).
        dts (list[Tensor]): Per chunk, delta in the same layout.
        h_end (Tensor): End states of the segments scanned from zero, (S * B, G, N, D // G).
        A2 (Tensor): A * log2(e), (G, N, D // G).
        Ct (Tensor): C, see :func:`_projection_steps`.
        chunk_len (int): Steps per chunk.
        block_len (int): Steps whose corrections are materialised at once.
        batch (int): B.

    Returns:
        tuple[list[Tensor], Tensor]: The exact outputs per chunk, and the last state (B, G, N,
        D // G).
    """
    num_segments = h_end.shape[0] // batch
    seg_decay = _decay(sum(dt.sum(0) for dt in dts), A2)  # decay over each whole segment
    h_end = h_end.view(num_segments, batch, *h_end.shape[1:])
    seg_decay = seg_decay.view_as(h_end)
    h0 = [torch.zeros_like(h_end[0])]
    for k in range(num_segments):  # h0[k]: true state entering segment k; h0[S]: last state
        h0.append(torch.addcmul(h_end[k], seg_decay[k], h0[-1]))
    carried_in = torch.stack(h0[1:-1]).flatten(0, 1)  # segments 1 .. S-1, ((S-1) * B, ...)

    later = slice(batch, None)  # segment 0 starts from zero and needs no correction
    Ct = Ct if Ct.dim() == 3 else Ct[:, later]
    elapsed = torch.zeros_like(dts[0][0, later])  # delta summed since the segment start
    exact = []
    for index, (y, dt) in enumerate(zip(ys, dts)):
        chunk = slice(index * chunk_len, (index + 1) * chunk_len)
        fixes = []
        for start in range(0, dt.shape[0], block_len):
            blk = slice(start, start + block_len)
            cum = dt[blk, later].cumsum(0) + elapsed
            elapsed = cum[-1]
            C = _at(_at(Ct, chunk), blk)
            fixes.append(_contract(_decay(cum, A2) * carried_in, C))
        exact.append(torch.cat([y[:, :batch], y[:, later] + torch.cat(fixes)], dim=1))
    return exact, h0[-1]
