"""Pure-PyTorch selective scan for every device: blocked forward, memory-lean backward.

Source: Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces",
arXiv 2312.00752, Sec. 3 and Alg. 2. Semantics of ``selective_scan_fn`` in mamba-ssm
(``mamba_ssm.ops.selective_scan_interface``), restricted to a real-valued ``A``; shapes as in
:mod:`mmfusion.ops.selective_scan.shapes`. Recurrence, for every batch element, channel d and
state index n (``delta`` taken after ``delta_bias`` and the optional softplus)::

    h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t          h_{-1} = 0
    y_t = sum_n C_t[n] * h_t[n]  (+ D * u_t)                        out = y * silu(z)

Forward
-------
The direct way (mamba-ssm's reference, and ``selective_scan_reference``) materialises
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
   The block buffers are reused and the states overwrite them in place. Nothing of size
   (B, D, L, N) is ever allocated.
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
5. Threads: the per-step ops of a small state (up to ``_STEP_SERIAL_ELEMS`` elements) run on
   one thread; only the block-sized ops use torch's thread pool. And while the machine is
   oversubscribed (1-minute load average at least ``_BUSY_LOAD_PER_CORE`` times the cores, the
   rule of libgomp's ``OMP_DYNAMIC``), the whole step loop runs on one thread. Every parallel
   region waits for all pool threads, so thousands of them collapse when other processes hold
   the cores (one scan took 30x longer next to a second one).

Why it is exact: steps 1-3 evaluate the reference's recurrence operation for operation (in
another memory order), and the two-level form is an identity: the recurrence is linear in h,
so a segment's state is its state started from zero plus the product of its step decays times
``h0``, and because A does not depend on t that product ``prod_i exp(delta_i * A)`` equals
``exp(A * S_t)``. Nothing is truncated or approximated; results differ from the step-by-step
loop by fp32 rounding only. Numerics: with Mamba's ``A <= 0`` and ``delta >= 0`` every exponent
is ``<= 0``, so no exponential overflows however large ``delta * |A|`` gets (factors underflow to
0 as in the loop), and no ``exp(+S)`` / ``exp(-S)`` pair is ever formed. All arithmetic is fp32
(inputs are upcast, as the reference does) and the output is cast back to ``u.dtype``.

Backward (memory-lean, as mamba-ssm's kernel)
---------------------------------------------
With autograd, :class:`_RecomputedScan` saves only the inputs and the state at every chunk
start (``L / chunk_len`` states of B * D * N elements; a single-level forward pass recomputes
them in backward when the forward was two-level). Backward walks the chunks in reverse; per
chunk it recomputes delta, ``delta * u`` and the chunk's states from its start state (one
(chunk_len, B, D, N) buffer), then runs the adjoint recurrence block by block, last step
first::

    g_h_t = C_t * g_y_t + exp(delta_{t+1} * A) * g_h_{t+1}        (g_h after the last step:
                                                                   the last state's gradient)
    g_B_t = sum_d g_h_t * delta_t * u_t      g_C_t = sum_d g_y_t * h_t
    g_delta_t += sum_n g_h_t * (B_t * u_t + A * exp(delta_t * A) * h_{t-1})
    g_A += sum_t g_h_t * delta_t * exp(delta_t * A) * h_{t-1}

(sums over d run over the channels of a group; the gate, skip, softplus and bias gradients are
elementwise). Each step costs one ``addcmul``, each block a few batched matmuls; the gradients
of u, delta and z are written chunk by chunk into their (B, D, L) results. Peak extra memory is
therefore the output, the input gradients and O(chunk) buffers instead of every step's
(B, D, N) tensors. Without recomputation (``recompute=False``) plain autograd records the
forward's functional ops, the earlier behaviour, kept as the benchmarks' baseline; tracing
(ONNX export) uses the same functional ops.
"""
import contextlib
import math
import os
from typing import Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from .shapes import ScanOutput, check_inputs, common_groups

__all__ = ['selective_scan_torch']

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
# Per-step ops on at most this many elements run on one thread (see the module docstring).
_STEP_SERIAL_ELEMS = 1 << 16
# The step loop runs on one thread while the load average per core is at least this.
_BUSY_LOAD_PER_CORE = 1.5


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
                         block_len: Optional[int] = None,
                         recompute: bool = True) -> ScanOutput:
    """Pure-PyTorch selective scan: blocked, optionally two-level (see the module docstring).

    Args:
        u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state: As in
            :func:`mmfusion.ops.selective_scan.selective_scan`.
        num_segments (int, optional): Segments scanned in parallel in the forward (two-level
            scan). Default: chosen from the sizes (1, i.e. a single-level scan, unless
            B * D * N <= 1024).
        block_len (int, optional): Steps materialised per block. Default: about 2**19
            elements per block.
        recompute (bool): With autograd, save only the inputs and chunk-start states and
            recompute the rest in backward. False records every step for plain autograd
            (memory O(B * D * L * N); the earlier behaviour). Defaults to True.

    Returns:
        Tensor | tuple[Tensor, Tensor]: The output (B, D, L) in ``u.dtype``; with
        ``return_last_state`` also the last state (B, D, N) in fp32.

    Raises:
        ValueError: If a shape is inconsistent or ``num_segments`` / ``block_len`` < 1.
        NotImplementedError: If an input is complex.
    """
    batch, dim, seqlen, dstate = check_inputs(u, delta, A, B, C, D, z, delta_bias)
    _plan(batch, dim, seqlen, dstate, num_segments, block_len)  # validates the two counts
    tensors = (u, delta, A, B, C, D, z, delta_bias)
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad
                                                 for t in tensors)
    if needs_grad and recompute and not torch.jit.is_tracing():
        out, last = _RecomputedScan.apply(delta_softplus, num_segments, block_len, *tensors)
    else:
        # Autograd and tracing (ONNX export) get purely functional ops; otherwise buffers are
        # reused.
        out, last, _ = _forward(*tensors, delta_softplus, num_segments, block_len,
                                functional=needs_grad or torch.jit.is_tracing())
    return (out, last) if return_last_state else out


class _RecomputedScan(torch.autograd.Function):
    """The scan with a recomputing backward (module docstring, "Backward")."""

    @staticmethod
    def forward(ctx, delta_softplus, num_segments, block_len, u, delta, A, B, C, D, z,
                delta_bias):
        out, last, starts = _forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                     num_segments, block_len, functional=False,
                                     chunk_starts=True)
        ctx.delta_softplus, ctx.block_len = delta_softplus, block_len
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, starts)
        ctx.set_materialize_grads(False)
        return out, last

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_last):
        u, delta, A, B, C, D, z, delta_bias, starts = ctx.saved_tensors
        grads = _backward(u, delta, A, B, C, D, z, delta_bias, ctx.delta_softplus,
                          ctx.block_len, starts, grad_out, grad_last, ctx.needs_input_grad[3:])
        return (None, None, None) + grads


def _forward(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor],
             z: Optional[Tensor], delta_bias: Optional[Tensor], delta_softplus: bool,
             num_segments: Optional[int], block_len: Optional[int], functional: bool,
             chunk_starts: bool = False) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """The forward scan (module docstring, steps 1-5).

    Args:
        u ... block_len: As :func:`selective_scan_torch`.
        functional (bool): Only out-of-place ops (autograd, tracing); else reuse buffers.
        chunk_starts (bool): Also return the state at every chunk start (single level only).

    Returns:
        tuple: The output (B, D, L) in ``u.dtype``, the last state (B, D, N) in fp32, and the
        chunk-start states (num_chunks, B, G, N, D // G), or None (two-level, or not asked).
    """
    batch, dim, seqlen, dstate = u.shape + A.shape[1:]
    num_segments, seg_len, block_len, chunk_len = _plan(batch, dim, seqlen, dstate, num_segments,
                                                        block_len)
    groups = common_groups(B, C)
    rows = num_segments * batch  # B' in the helpers: every (segment, batch element) pair
    # Channels innermost: one step's state is (B', G, N, D // G), contiguous over D // G.
    A2 = _log2e_times(A, groups)
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
    ys, dts, starts = [], [], []
    with _loop_threads():
        for start in range(0, seg_len, chunk_len):
            chunk = slice(start, start + chunk_len)
            starts.append(h)
            dt = _chunk_delta(delta_steps[chunk], delta_bias, delta_softplus,
                              None if padding is None else padding[chunk])
            dt = dt.view(dt.shape[0], rows, groups, dim // groups)
            dtu = dt * u_steps[chunk].float().view_as(dt)
            y, h = _scan_chunk(dt, dtu, A2, _at(Bt, chunk), _at(Ct, chunk), h, block_len,
                               workspace, None if y_steps is None else y_steps[chunk])
            ys.append(y)
            dts.append(dt if num_segments > 1 else None)
    del delta_steps, u_steps  # (B, D, L) each: freed before the output is allocated
    if num_segments > 1:
        ys, h = _join_segments(ys, dts, h, A2, Ct, chunk_len, block_len, batch)

    out = _batch_major(torch.cat(ys) if y_steps is None else y_steps, batch, seqlen)
    out = _skip_and_gate(out, u, D, z, inplace=not functional).to(u.dtype)
    starts = torch.stack(starts) if chunk_starts and num_segments == 1 else None
    return out, h.transpose(-1, -2).reshape(batch, dim, dstate), starts


def _log2e_times(A: Tensor, groups: int) -> Tensor:
    """A * log2(e) in the state layout, (G, N, D // G), fp32."""
    dim, dstate = A.shape
    A2 = (A.float() * math.log2(math.e)).view(groups, dim // groups, dstate)
    return A2.transpose(1, 2).contiguous()


@contextlib.contextmanager
def _step_threads(step_elems: int) -> Iterator[None]:
    """Run the enclosed per-step ops on one thread if a step has few elements (see the module
    docstring, step 5); torch's thread count is restored afterwards."""
    with _one_thread(step_elems <= _STEP_SERIAL_ELEMS):
        yield


@contextlib.contextmanager
def _loop_threads() -> Iterator[None]:
    """Run the enclosed step loop on one thread while the machine is oversubscribed (module
    docstring, step 5)."""
    try:
        busy = os.getloadavg()[0] >= _BUSY_LOAD_PER_CORE * (os.cpu_count() or 1)
    except OSError:  # no load average on this platform
        busy = False
    with _one_thread(busy):
        yield


@contextlib.contextmanager
def _one_thread(condition: bool) -> Iterator[None]:
    """torch's thread count set to 1 inside the context if ``condition``, then restored."""
    threads = torch.get_num_threads()
    if threads == 1 or not condition:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _backward(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor],
              z: Optional[Tensor], delta_bias: Optional[Tensor], delta_softplus: bool,
              block_len: Optional[int], starts: Optional[Tensor], grad_out: Optional[Tensor],
              grad_last: Optional[Tensor], needs: Tuple[bool, ...]) -> Tuple:
    """Gradients of (u, delta, A, B, C, D, z, delta_bias), by recomputation chunk by chunk
    (module docstring, "Backward"); None where ``needs`` is False.

    Args:
        u ... delta_softplus: The forward's inputs.
        block_len (int, optional): As :func:`selective_scan_torch`.
        starts (Tensor, optional): The forward's chunk-start states (num_chunks, B, G, N,
            D // G), or None to recompute them.
        grad_out (Tensor, optional): Gradient of the output, (B, D, L).
        grad_last (Tensor, optional): Gradient of the last state, (B, D, N).
        needs (tuple[bool]): Which of the eight inputs need a gradient.
    """
    batch, dim, seqlen, dstate = u.shape + A.shape[1:]
    _, _, block_len, chunk_len = _plan(batch, dim, seqlen, dstate, 1, block_len)
    groups = common_groups(B, C)
    chans = dim // groups
    A2 = _log2e_times(A, groups)
    A_state = A2 * math.log(2.0)  # A in the state layout (G, N, D // G)
    Bt = _projection_steps(B, 1, seqlen, groups)  # (L, B, G, N) or (G, N, D // G)
    Ct = _projection_steps(C, 1, seqlen, groups)
    if starts is None:
        starts = _chunk_starts(u, delta, delta_bias, delta_softplus, A2, Bt, chunk_len,
                               block_len)
    if grad_out is None:
        grad_out = u.new_zeros(u.shape)
    f32 = dict(dtype=torch.float32, device=u.device)
    grad_u = torch.empty(u.shape, **f32)
    grad_delta = torch.empty(u.shape, **f32)
    grad_z = None if z is None else torch.empty(u.shape, **f32)
    grad_A = torch.zeros(A2.shape, **f32)
    grad_Bt, grad_Ct = torch.zeros_like(Bt), torch.zeros_like(Ct)
    grad_D = torch.zeros(dim, **f32)
    grad_bias = torch.zeros(dim, **f32)
    state_shape = (batch, groups, dstate, chans)
    carry = (torch.zeros(state_shape, **f32) if grad_last is None else
             grad_last.float().view(batch, groups, chans, dstate).transpose(-1, -2))
    states = torch.empty((min(chunk_len, seqlen), ) + state_shape, **f32)

    with _loop_threads():
        for index in reversed(range(len(starts))):
            chunk = slice(index * chunk_len, min(seqlen, (index + 1) * chunk_len))
            steps = chunk.stop - chunk.start
            x = _chunk_steps(delta, chunk)  # (T, B, D)
            if delta_bias is not None:
                x = x + delta_bias.float()
            dt = F.softplus(x) if delta_softplus else x
            u_c = _chunk_steps(u, chunk)
            dtu = dt * u_c
            grad_y = _chunk_steps(grad_out, chunk)
            if z is not None:
                z_c = _chunk_steps(z, chunk)
                sig = torch.sigmoid(z_c)
                gate_grad = grad_y
                grad_y = grad_y * (z_c * sig)  # gradient of y before the gate
            B_c, C_c = _at(Bt, chunk), _at(Ct, chunk)
            split = (steps, batch, groups, chans)
            H = _chunk_states(dt.view(split), dtu.view(split), A2, B_c, starts[index], block_len,
                              states[:steps])
            if z is not None:  # d out / d z = (y + D u) * silu'(z)
                y = _contract(H, C_c).view(steps, batch, dim)
                if D is not None:
                    y = torch.addcmul(y, u_c, D.float())
                grad_z[..., chunk] = (gate_grad * y * sig * (1 + z_c * (1 - sig))).permute(1, 2, 0)
            grad_dtu = torch.empty(split, **f32)
            grad_dt = torch.empty(split, **f32)
            for start in reversed(range(0, steps, block_len)):
                blk = slice(start, min(steps, start + block_len))
                before = starts[index] if start == 0 else H[start - 1]
                carry = _adjoint_block(dt.view(split)[blk], dtu.view(split)[blk],
                                       grad_y.view(split)[blk], A2, A_state, _at(B_c, blk),
                                       _at(C_c, blk), H[blk], before, carry, grad_dtu[blk],
                                       grad_dt[blk], grad_A, _at(_at(grad_Bt, chunk), blk),
                                       _at(_at(grad_Ct, chunk), blk))
            grad_dtu, grad_dt = grad_dtu.view(steps, batch, dim), grad_dt.view(steps, batch, dim)
            grad_dt.addcmul_(grad_dtu, u_c)
            grad_u_c = grad_dtu.mul_(dt)
            if D is not None:
                grad_u_c.addcmul_(grad_y, D.float())
                grad_D += (grad_y * u_c).sum((0, 1))
            if delta_softplus:  # torch's softplus: gradient 1 above its threshold (20)
                grad_dt = torch.where(x > 20, grad_dt, grad_dt * torch.sigmoid(x))
            grad_bias += grad_dt.sum((0, 1))
            grad_u[..., chunk] = grad_u_c.permute(1, 2, 0)
            grad_delta[..., chunk] = grad_dt.permute(1, 2, 0)

    grads = (grad_u, grad_delta,
             grad_A.transpose(1, 2).reshape(dim, dstate), _projection_grad(grad_Bt, B),
             _projection_grad(grad_Ct, C), grad_D, grad_z, grad_bias)
    inputs = (u, delta, A, B, C, D, z, delta_bias)
    return tuple(g.to(t.dtype) if need else None for g, t, need in zip(grads, inputs, needs))


def _chunk_steps(x: Tensor, chunk: slice) -> Tensor:
    """Steps ``chunk`` of a (B, D, L) tensor, time-major (T, B, D), fp32, contiguous."""
    batch, dim, _ = x.shape
    part = x[..., chunk].reshape(batch * dim, -1)
    return _transposed(part).view(-1, batch, dim).float()


def _chunk_states(dt: Tensor, dtu: Tensor, A2: Tensor, B: Tensor, h: Tensor, block_len: int,
                  out: Tensor) -> Tensor:
    """States after every step of a chunk, written into ``out``.

    Args:
        dt, dtu (Tensor): delta and delta * u, (T, B, G, D // G).
        A2 (Tensor): A * log2(e), (G, N, D // G).
        B (Tensor): The chunk's B, (T, B, G, N) or time-invariant (G, N, D // G).
        h (Tensor): State before the chunk, (B, G, N, D // G).
        out (Tensor): (T, B, G, N, D // G).

    Returns:
        Tensor: ``out``.
    """
    decay = None
    for start in range(0, dt.shape[0], block_len):
        blk = slice(start, start + block_len)
        decay = _decay(dt[blk], A2, out=None if decay is None else decay[:dt[blk].shape[0]])
        B_blk = _at(B, blk)
        torch.mul(dtu[blk].unsqueeze(-2), B_blk if B_blk.dim() == 3 else B_blk.unsqueeze(-1),
                  out=out[blk])
        with _step_threads(h.numel()):
            for decay_t, state_t in zip(decay.unbind(0), out[blk].unbind(0)):
                h = state_t.addcmul_(decay_t, h)
    return out


def _chunk_starts(u: Tensor, delta: Tensor, delta_bias: Optional[Tensor], delta_softplus: bool,
                  A2: Tensor, Bt: Tensor, chunk_len: int, block_len: int) -> Tensor:
    """The state at every chunk start, (num_chunks, B, G, N, D // G), by a single-level pass
    (for a forward that ran two-level)."""
    batch, dim, seqlen = u.shape
    groups, dstate, chans = A2.shape
    h = A2.new_zeros(batch, groups, dstate, chans)
    states = A2.new_empty((min(chunk_len, seqlen), ) + h.shape)
    starts = []
    for start in range(0, seqlen, chunk_len):
        chunk = slice(start, start + chunk_len)
        starts.append(h)
        x = _chunk_steps(delta, chunk)
        dt = _chunk_delta(x, delta_bias, delta_softplus, None)
        dtu = (dt * _chunk_steps(u, chunk)).view(-1, batch, groups, chans)
        dt = dt.view_as(dtu)
        h = _chunk_states(dt, dtu, A2, _at(Bt, chunk), h, block_len,
                          states[:dt.shape[0]])[-1].clone()
    return torch.stack(starts)


def _adjoint_block(dt: Tensor, dtu: Tensor, grad_y: Tensor, A2: Tensor, A_state: Tensor,
                   B: Tensor, C: Tensor, H: Tensor, before: Tensor, carry: Tensor,
                   grad_dtu: Tensor, grad_dt: Tensor, grad_A: Tensor, grad_B: Tensor,
                   grad_C: Tensor) -> Tensor:
    """Backward through one block of T steps (module docstring, "Backward").

    Args:
        dt, dtu, grad_y (Tensor): delta, delta * u and the gradient of y, (T, B, G, D // G).
        A2, A_state (Tensor): A * log2(e) and A, (G, N, D // G).
        B, C (Tensor): The block's projections, (T, B, G, N) or (G, N, D // G).
        H (Tensor): States after each step, (T, B, G, N, D // G); ``before``: the state
            before the block, (B, G, N, D // G).
        carry (Tensor): ``exp(delta * A) * g_h`` of the step after the block.
        grad_dtu, grad_dt (Tensor): Written: the block's gradients of delta * u and delta
            (the latter through the decay only), (T, B, G, D // G).
        grad_A (Tensor): Accumulated, (G, N, D // G).
        grad_B, grad_C (Tensor): Accumulated, shaped like ``B``, ``C``.

    Returns:
        Tensor: The carry into the step before the block.
    """
    steps = dt.shape[0]
    decay = _decay(dt, A2)
    # g_h_t = C_t * g_y_t + decay_{t+1} * g_h_{t+1}, in place, last step first.
    C_n = C if C.dim() == 3 else C.unsqueeze(-1)
    grad_h = torch.mul(grad_y.unsqueeze(-2), C_n)
    grad_h[-1] += carry
    with _step_threads(carry.numel()):
        for t in range(steps - 2, -1, -1):
            grad_h[t].addcmul_(decay[t + 1], grad_h[t + 1])
    carry = decay[0] * grad_h[0]
    # Through the decay: q = g_h_t * h_{t-1} * exp(delta_t * A).
    q = decay.mul_(grad_h)
    q[0].mul_(before)
    q[1:].mul_(H[:-1])
    grad_A += torch.einsum('tbgnc,tbgc->gnc', q, dt)
    torch.sum(q.mul_(A_state), -2, out=grad_dt)
    # Through the drive delta * u * B and the output contraction.
    rows = steps * dt.shape[1] * dt.shape[2]
    if B.dim() == 3:
        grad_B += torch.einsum('tbgnc,tbgc->gnc', grad_h, dtu)
        torch.sum(grad_h.mul_(B), -2, out=grad_dtu)
    else:
        grad_B += torch.bmm(grad_h.view(rows, *grad_h.shape[-2:]),
                            dtu.reshape(rows, -1, 1)).view(B.shape)
        torch.bmm(B.reshape(rows, 1, -1), grad_h.view(rows, *grad_h.shape[-2:]),
                  out=grad_dtu.view(rows, 1, -1))
    if C.dim() == 3:
        grad_C += torch.einsum('tbgnc,tbgc->gnc', H, grad_y)
    else:
        grad_C += torch.bmm(H.reshape(rows, *H.shape[-2:]),
                            grad_y.reshape(rows, -1, 1)).view(C.shape)
    return carry


def _projection_grad(grad: Tensor, P: Tensor) -> Tensor:
    """Gradient of B or C from the layout of :func:`_projection_steps` (one segment) back to
    ``P``'s layout, fp32."""
    if P.dim() == 2:  # (G, N, D // G) -> (D, N)
        return grad.transpose(1, 2).reshape(P.shape)
    seqlen, batch, groups, dstate = grad.shape
    own = P.shape[1] if P.dim() == 4 else 1
    grad = grad.view(seqlen, batch, own, groups // own, dstate).sum(3)
    grad = grad.permute(1, 2, 3, 0)  # (B, G_P, N, L)
    return grad.reshape(P.shape)


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
        with _step_threads(h.numel()):
            for decay_t, state_t in zip(decay.unbind(0), drive.unbind(0)):
                h = state_t.addcmul_(decay_t, h)
        h = h.clone()  # a view of the workspace, which _contract and the next block overwrite
        return _contract(drive, C, out), h
    per_step = []
    with _step_threads(h.numel()):
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
