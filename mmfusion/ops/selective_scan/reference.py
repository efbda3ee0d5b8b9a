"""Step-by-step selective scan: the plain loop over L, the ground truth of the tests and the
baseline of the benchmarks (shapes: see :mod:`mmfusion.ops.selective_scan.shapes`)."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .shapes import ScanOutput, check_inputs, per_channel

__all__ = ['selective_scan_reference']


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
    :func:`~mmfusion.ops.selective_scan.selective_scan`.
    """
    batch, dim, seqlen, dstate = check_inputs(u, delta, A, B, C, D, z, delta_bias)
    dtype_in = u.dtype
    u = u.float()
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    A = A.float()
    B = per_channel(B.float(), dim)  # (D, N) or (B, D or 1, N, L)
    C = per_channel(C.float(), dim)

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
