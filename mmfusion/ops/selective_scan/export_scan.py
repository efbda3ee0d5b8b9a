"""Selective scan for ONNX export: the recurrence as one TorchScript loop over L (shapes: see
:mod:`mmfusion.ops.selective_scan.shapes`).

The blocked PyTorch scan uses in-place ops, ``copy_`` and ``exp2`` that the TorchScript ONNX
exporter cannot translate, and its Python loops would be unrolled into a graph fixed to one
sequence length; :func:`~mmfusion.ops.selective_scan.selective_scan` therefore runs
:func:`selective_scan_export` while ``torch.onnx.is_in_onnx_export()``.
"""
import functools
import warnings
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .shapes import ScanOutput, check_inputs, common_groups

__all__ = ['selective_scan_export']


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
    Same semantics as :func:`~mmfusion.ops.selective_scan.selective_scan` (results equal to
    fp32 rounding); slow in eager PyTorch (an interpreted loop), so
    :func:`~mmfusion.ops.selective_scan.selective_scan` uses it only while exporting.
    Arguments, returns and errors as :func:`~mmfusion.ops.selective_scan.selective_scan`.
    """
    batch, dim, seqlen, dstate = check_inputs(u, delta, A, B, C, D, z, delta_bias)
    groups = common_groups(B, C)
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
