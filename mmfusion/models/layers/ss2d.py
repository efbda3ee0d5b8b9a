"""SS2D, the 2D selective scan of VMamba (v0), as Fusion-Mamba uses it.

Papers: Y. Liu et al., "VMamba: Visual State Space Model", arXiv 2401.10166, Sec. 4.2 (2D
selective scan, SS2D: cross-scan, S6 per direction, cross-merge) and Fig. 2/3; W. Dong et al.,
"Fusion-Mamba for Cross-modality Object Detection", arXiv 2404.09146, Sec. 3 (the VSS blocks of
its backbone and the SSCS / DSSF fusion modules build on this SS2D). Selective scan (S6): Gu & Dao,
arXiv 2312.00752, Alg. 2, via :func:`mmfusion.ops.selective_scan`.

Official code read to settle the details: ``SS2D`` with ``forward_corev0`` in
``models/common.py`` of github.com/EhanDong/Fusion-Mamba, which is VMamba's v0 ``SS2D``
(github.com/MzeroMiko/VMamba, ``classification/models/vmamba.py`` of the v0 release).

Shape shorthand (every docstring of this module)
------------------------------------------------
    B: batch size          H, W: height, width of the feature map      L = H * W
    C: channels (``d_model``)        d_inner = expand * C         N: state size (``d_state``)
    R: rank of the step-size projection (``dt_rank``, default ceil(C / 16))
    K = 4: scan directions

Computation (``forward``, channels-last input (B, H, W, C))::

    x, z  = split(in_proj(x))                          Linear C -> 2 d_inner, no bias
    x     = silu(dwconv3x3(x))                          depth-wise, with bias, (B, d_inner, H, W)
    xs    = cross_scan(x)                               (B, K, d_inner, L), directions:
            k=0 row-major, k=1 column-major, k=2 row-major reversed, k=3 column-major reversed
    dt, Bk, Ck = split(x_proj_k(xs_k))                  per direction, Linear d_inner -> R + 2N
    delta = dt_proj_k(dt)                               per direction, Linear R -> d_inner
    ys    = selective_scan(xs, delta, A, Bk, Ck, D,     ONE call: K folded into the channels
                           delta_bias, softplus)        (B, K*d_inner, L), B/C grouped (B, K, N, L)
    y     = cross_merge(ys)                             undo each order, sum over K
                                                        -> (B, H, W, d_inner)
    out   = out_proj(LayerNorm(y) * silu(z))            Linear d_inner -> C, no bias; dropout

Initialisation (as the official code):

- ``A_logs`` (K * d_inner, N): S4D-real, ``A = -exp(A_log)`` with ``A_log[:, n] = log(n + 1)``,
  i.e. A = -(1, 2, ..., N) for every channel of every direction.
- ``Ds`` (K * d_inner,): ones.
- ``dt_projs_bias`` (K, d_inner): ``softplus^-1(dt)`` with ``dt`` log-uniform in
  [``dt_min``, ``dt_max``] = [0.001, 0.1], clamped below at ``dt_init_floor`` = 1e-4, drawn
  independently per direction, so that ``softplus(bias)`` lies in [dt_min, dt_max].
- ``dt_projs_weight`` (K, d_inner, R): uniform in +-``dt_scale * R ** -0.5`` (``dt_init='random'``)
  or that constant (``dt_init='constant'``).
- ``x_proj_weight`` (K, R + 2N, d_inner): torch's ``nn.Linear`` default (uniform in
  +-d_inner ** -0.5); in/out projections, depth-wise conv and LayerNorm: torch defaults.

Differences from the official code, and why:

- The four scans go to :func:`mmfusion.ops.selective_scan` (mamba-ssm's kernel for CUDA tensors
  when it imports, an exact PyTorch scan otherwise) instead of a hard import of mamba-ssm, so the
  layer runs on CPU. Same call and semantics as the official ``selective_scan_fn`` call.
- Cross-scan and cross-merge are the functions :func:`cross_scan` / :func:`cross_merge`, tested on
  their own; the official code inlines them. Same index maps.
- ``A_logs`` and ``Ds`` carry the official ``_no_weight_decay`` attribute, which mmengine ignores:
  exclude them from weight decay with ``paramwise_cfg=dict(custom_keys={'A_logs':
  dict(decay_mult=0.), 'Ds': dict(decay_mult=0.)})`` if wanted.
- ``channels_first=True`` (not in the official code) accepts and returns (B, C, H, W).

Parameter names equal the official ones (``in_proj``, ``conv2d``, ``x_proj_weight``,
``dt_projs_weight``, ``dt_projs_bias``, ``A_logs``, ``Ds``, ``out_norm``, ``out_proj``), so an
official checkpoint's SS2D state dict loads as is.
"""
import math
from typing import Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch import Tensor, nn

from mmfusion.ops import selective_scan

__all__ = ['SS2D', 'cross_scan', 'cross_merge']

NUM_DIRECTIONS = 4


def cross_scan(x: Tensor) -> Tensor:
    """Four-direction cross-scan of a feature map (VMamba Sec. 4.2, Fig. 3).

    Args:
        x (Tensor): Feature map, (B, D, H, W).

    Returns:
        Tensor: (B, K=4, D, L) sequences: k=0 row-major (``l = h * W + w``), k=1 column-major
        (``l = w * H + h``), k=2 and k=3 the same two orders reversed.
    """
    rows = x.flatten(2)
    cols = x.transpose(2, 3).flatten(2)
    forward = torch.stack([rows, cols], dim=1)  # (B, 2, D, L)
    return torch.cat([forward, forward.flip(-1)], dim=1)


def cross_merge(ys: Tensor, height: int, width: int, reduce: bool = True) -> Tensor:
    """Cross-merge: put every direction's sequence back at its pixels, then sum over K.

    Inverse of the index maps of :func:`cross_scan` (so ``cross_merge(cross_scan(x))`` is
    ``4 * x`` flattened).

    Args:
        ys (Tensor): Per-direction sequences in scan order, (B, K=4, D, L).
        height (int): H. width (int): W.
        reduce (bool): Sum the directions. Defaults to True.

    Returns:
        Tensor: (B, D, L) in row-major pixel order if ``reduce``, else (B, K, D, L).
    """
    batch, _, dim, length = ys.shape
    unflipped = torch.cat([ys[:, :2], ys[:, 2:].flip(-1)], dim=1)  # k=2 -> rows, k=3 -> cols
    rows = unflipped[:, 0::2]  # directions 0 and 2, already row-major
    cols = unflipped[:, 1::2].reshape(batch, 2, dim, width, height).transpose(-1, -2)
    cols = cols.reshape(batch, 2, dim, length)
    if reduce:
        return rows.sum(1) + cols.sum(1)
    return torch.stack([rows[:, 0], cols[:, 0], rows[:, 1], cols[:, 1]], dim=1)


@MODELS.register_module()
class SS2D(BaseModule):
    """2D selective scan (SS2D) of VMamba v0; see the module docstring for the computation.

    Args:
        d_model (int): Channels C of the input and output.
        d_state (int): State size N per channel. Defaults to 16.
        d_conv (int): Kernel size of the depth-wise convolution. Defaults to 3.
        expand (float): d_inner = int(expand * C). Defaults to 2.
        dt_rank (int | str): R; ``'auto'`` is ceil(C / 16). Defaults to 'auto'.
        dt_min (float): Smallest initial step size. Defaults to 0.001.
        dt_max (float): Largest initial step size. Defaults to 0.1.
        dt_init (str): ``'random'`` or ``'constant'`` init of the dt projection weight.
        dt_scale (float): Scale of that weight's init range. Defaults to 1.0.
        dt_init_floor (float): Lower clamp of the sampled initial step. Defaults to 1e-4.
        dropout (float): Dropout on the output. Defaults to 0.
        conv_bias (bool): Bias of the depth-wise conv. Defaults to True.
        bias (bool): Bias of the in/out projections. Defaults to False.
        channels_first (bool): Input and output as (B, C, H, W) instead of (B, H, W, C).
            Defaults to False (channels-last, as the official code).
        init_cfg (dict, optional): mmengine init config. Defaults to None (the init above).
    """

    def __init__(self,
                 d_model: int,
                 d_state: int = 16,
                 d_conv: int = 3,
                 expand: float = 2,
                 dt_rank='auto',
                 dt_min: float = 0.001,
                 dt_max: float = 0.1,
                 dt_init: str = 'random',
                 dt_scale: float = 1.0,
                 dt_init_floor: float = 1e-4,
                 dropout: float = 0.,
                 conv_bias: bool = True,
                 bias: bool = False,
                 channels_first: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if dt_init not in ('random', 'constant'):
            raise ValueError(f"dt_init must be 'random' or 'constant', got {dt_init!r}")
        self.d_model = d_model
        self.d_state = d_state
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == 'auto' else int(dt_rank)
        self.channels_first = channels_first
        k, d_inner, rank = NUM_DIRECTIONS, self.d_inner, self.dt_rank

        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=bias)
        self.conv2d = nn.Conv2d(d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2,
                                groups=d_inner, bias=conv_bias)
        self.act = nn.SiLU()
        x_proj = torch.empty(k, rank + 2 * d_state, d_inner)
        for weight in x_proj:  # nn.Linear's default init, per direction
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        self.x_proj_weight = nn.Parameter(x_proj)
        std = dt_scale * rank**-0.5
        dt_weight = torch.empty(k, d_inner, rank)
        if dt_init == 'random':
            nn.init.uniform_(dt_weight, -std, std)
        else:
            nn.init.constant_(dt_weight, std)
        self.dt_projs_weight = nn.Parameter(dt_weight)
        self.dt_projs_bias = nn.Parameter(
            self.dt_bias_init(k, d_inner, dt_min, dt_max, dt_init_floor))
        a_log = torch.log(torch.arange(1, d_state + 1, dtype=torch.float32))
        self.A_logs = nn.Parameter(a_log.repeat(k * d_inner, 1))  # (K * d_inner, N)
        self.Ds = nn.Parameter(torch.ones(k * d_inner))
        self.A_logs._no_weight_decay = True
        self.Ds._no_weight_decay = True
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @staticmethod
    def dt_bias_init(copies: int, d_inner: int, dt_min: float, dt_max: float,
                     dt_init_floor: float) -> Tensor:
        """softplus^-1 of steps log-uniform in [dt_min, dt_max] (floored), (copies, d_inner)."""
        log_dt = torch.rand(copies, d_inner) * (math.log(dt_max) - math.log(dt_min))
        dt = torch.exp(log_dt + math.log(dt_min)).clamp(min=dt_init_floor)
        return dt + torch.log(-torch.expm1(-dt))  # softplus^-1(dt)

    def scan(self, xs: Tensor) -> Tensor:
        """The four selective scans, in one call of :func:`mmfusion.ops.selective_scan`.

        Args:
            xs (Tensor): Cross-scanned sequences, (B, K, d_inner, L).

        Returns:
            Tensor: Per-direction outputs in scan order, (B, K, d_inner, L), fp32.
        """
        batch, k, d_inner, length = xs.shape
        x_dbl = torch.einsum('bkdl,kcd->bkcl', xs, self.x_proj_weight)
        dts, Bs, Cs = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.einsum('bkrl,kdr->bkdl', dts, self.dt_projs_weight)
        ys = selective_scan(
            xs.float().reshape(batch, k * d_inner, length),
            dts.float().reshape(batch, k * d_inner, length),
            -torch.exp(self.A_logs.float()),
            Bs.float().contiguous(),
            Cs.float().contiguous(),
            self.Ds.float(),
            z=None,
            delta_bias=self.dt_projs_bias.float().reshape(-1),
            delta_softplus=True)
        return ys.view(batch, k, d_inner, length)

    def forward(self, x: Tensor) -> Tensor:
        """Args:
            x (Tensor): (B, H, W, C), or (B, C, H, W) with ``channels_first``.

        Returns:
            Tensor: Same shape and layout as ``x``.
        """
        if self.channels_first:
            x = x.permute(0, 2, 3, 1)
        batch, height, width, _ = x.shape
        x, z = self.in_proj(x).chunk(2, dim=-1)  # (B, H, W, d_inner) each
        x = self.act(self.conv2d(x.permute(0, 3, 1, 2).contiguous()))  # (B, d_inner, H, W)
        y = cross_merge(self.scan(cross_scan(x)), height, width)  # (B, d_inner, L)
        y = y.transpose(1, 2).reshape(batch, height, width, -1).to(x.dtype)
        y = self.out_norm(y) * F.silu(z)
        out = self.dropout(self.out_proj(y))
        return out.permute(0, 3, 1, 2) if self.channels_first else out
