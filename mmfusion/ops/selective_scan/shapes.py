"""Argument checks and B / C layouts shared by every selective-scan implementation.

Shape shorthand (used in every docstring of :mod:`mmfusion.ops.selective_scan`)
-------------------------------------------------------------------------------
    B: batch size                  D: number of channels (the model width fed to the scan)
    L: sequence length             N: state size per channel (``d_state``)
    G: number of groups sharing one input-dependent B / C; D % G == 0 and channel ``d`` uses
       group ``d // (D // G)``

B and C each come in one of three layouts: (D, N) time-invariant, (B, N, L) shared by all
channels, or grouped (B, G, N, L).
"""
import math
from typing import Tuple, Union

from torch import Tensor

__all__ = ['ScanOutput', 'check_inputs', 'common_groups', 'per_channel']

# The output, or (output, last state) with ``return_last_state``.
ScanOutput = Union[Tensor, Tuple[Tensor, Tensor]]


def check_inputs(u, delta, A, B, C, D, z, delta_bias) -> Tuple[int, int, int, int]:
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


def common_groups(B: Tensor, C: Tensor) -> int:
    """Groups G of the scan's channel layout: lcm of the group counts of B and C (1 if none)."""
    counts = [P.shape[1] if P.dim() == 4 else 1 for P in (B, C) if P.dim() >= 3]
    return math.lcm(*counts) if counts else 1


def per_channel(P: Tensor, dim: int) -> Tensor:
    """B or C as (D, N) or (B, D or 1, N, L): groups repeated to their channels."""
    if P.dim() == 3:
        return P[:, None]
    if P.dim() == 4:
        return P.repeat_interleave(dim // P.shape[1], dim=1)
    return P
