"""State Space Channel Swapping (SSCS), the shallow-fusion half of Fusion-Mamba's FMB.

Paper: W. Dong et al., "Fusion-Mamba for Cross-modality Object Detection", arXiv 2404.09146
(IEEE TMM 2025), Sec. 3 (Fusion-Mamba block, SSCS module: channel swapping, then a VSS block per
modality). Official code read for the details: ``chnnel_swapping_Vmamba`` in ``models/common.py``
of github.com/EhanDong/Fusion-Mamba (used with depth 1 in ``yolov5l-fusionmamba.yaml``).

Shape shorthand: B batch, C channels (C % 4 == 0), H, W height and width.

Computation::

    split C into quarters:      F_R = [R1, R2, R3, R4],  F_IR = [I1, I2, I3, I4]
    channel swapping (CS):      T_R  = [R1, I2, R3, I4]          (quarters 2 and 4 exchanged)
                                T_IR = [I1, R2, I3, R4]
    state-space enhancement:    F~_R = VSS_R(T_R),  F~_IR = VSS_IR(T_IR)

``VSS_*`` is :class:`~mmfusion.models.layers.VSSBlock` (``x + SS2D(LayerNorm(x))``), ``depth``
of them chained per modality, with separate weights per modality (as the official ``blocks1`` /
``blocks2``). The quarter layout is the official one (channel ``c`` belongs to quarter
``c // (C / 4)``).

Differences from the official code, and why:

- No ``.cuda()`` calls (the official forward moves both streams to the GPU); runs on any device.
- ``C % 4 != 0`` raises a ``ValueError`` (the official ``torch.split`` then yields five chunks and
  the concatenation silently drops channels or crashes later).
- Input/output (B, C, H, W) by default; ``channels_first=False`` takes (B, H, W, C), which the FMB
  uses to permute once for SSCS and DSSF together.
- LayerNorm epsilon 1e-5: the official SSCS passes ``nn.LayerNorm`` (default eps) to its VSS
  blocks, overriding the VSS block's own 1e-6 default.
- The scans go through :func:`mmfusion.ops.selective_scan` (via SS2D): mamba-ssm's kernel on CUDA
  when it imports, an exact PyTorch scan otherwise (the official code hard-imports mamba-ssm).
"""
from typing import Optional, Tuple

import torch
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmfusion.models.layers import VSSBlock

__all__ = ['StateSpaceChannelSwapping', 'swap_channel_quarters']


def swap_channel_quarters(x_rgb: Tensor, x_ir: Tensor, dim: int = 1) -> Tuple[Tensor, Tensor]:
    """Channel swapping (CS) of SSCS: quarters 2 and 4 (1-based) are exchanged between streams.

    Args:
        x_rgb (Tensor): RGB features, C channels along ``dim`` (C % 4 == 0).
        x_ir (Tensor): Infrared features, same shape.
        dim (int): Channel dimension. Defaults to 1 ((B, C, H, W)).

    Returns:
        tuple[Tensor, Tensor]: ``[R1, I2, R3, I4]`` and ``[I1, R2, I3, R4]`` along ``dim``.

    Raises:
        ValueError: If the shapes differ or C is not divisible by 4.
    """
    if x_rgb.shape != x_ir.shape:
        raise ValueError(f'SSCS: RGB and infrared features must have the same shape, got '
                         f'{tuple(x_rgb.shape)} and {tuple(x_ir.shape)}')
    channels = x_rgb.shape[dim]
    if channels % 4:
        raise ValueError(f'SSCS: the channel count must be divisible by 4 (quarters are '
                         f'swapped), got C={channels}')
    r1, r2, r3, r4 = x_rgb.chunk(4, dim=dim)
    i1, i2, i3, i4 = x_ir.chunk(4, dim=dim)
    return torch.cat([r1, i2, r3, i4], dim=dim), torch.cat([i1, r2, i3, r4], dim=dim)


@MODELS.register_module()
class StateSpaceChannelSwapping(BaseModule):
    """SSCS: channel swapping between the RGB and infrared streams, then VSS blocks per stream.

    Args:
        in_channels (int): Channels C of both streams (divisible by 4).
        depth (int): VSS blocks per stream. Defaults to 1 (the official configs).
        drop_path (float | list[float]): Stochastic depth rate(s) of the VSS blocks.
            Defaults to 0.
        norm_eps (float): LayerNorm epsilon of the VSS blocks. Defaults to 1e-5 (official).
        channels_first (bool): Inputs/outputs (B, C, H, W) if True, else (B, H, W, C).
            Defaults to True.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
        **ss2d_kwargs: Arguments of :class:`~mmfusion.models.layers.SS2D` (``d_state``,
            ``expand``, ``dt_rank``, ``dropout``, ...).

    Raises:
        ValueError: If ``in_channels`` is not divisible by 4 or ``depth`` < 1.
    """

    def __init__(self,
                 in_channels: int,
                 depth: int = 1,
                 drop_path=0.,
                 norm_eps: float = 1e-5,
                 channels_first: bool = True,
                 init_cfg: Optional[dict] = None,
                 **ss2d_kwargs):
        super().__init__(init_cfg=init_cfg)
        if in_channels % 4:
            raise ValueError(f'StateSpaceChannelSwapping: in_channels must be divisible by 4, '
                             f'got {in_channels}')
        if depth < 1:
            raise ValueError(f'StateSpaceChannelSwapping: depth must be >= 1, got {depth}')
        self.in_channels = in_channels
        self.channels_first = channels_first
        rates = drop_path if isinstance(drop_path, (list, tuple)) else [drop_path] * depth
        vss_kwargs = dict(ss2d_kwargs)
        attn_drop_rate = vss_kwargs.pop('dropout', 0.)

        def stream():
            return nn.ModuleList(
                VSSBlock(in_channels, drop_path=rate, attn_drop_rate=attn_drop_rate,
                         norm_eps=norm_eps, **vss_kwargs) for rate in rates)

        self.blocks_rgb = stream()
        self.blocks_ir = stream()

    def forward(self, x_rgb: Tensor, x_ir: Tensor) -> Tuple[Tensor, Tensor]:
        """Args:
            x_rgb (Tensor): RGB features, (B, C, H, W) (or (B, H, W, C) if not
                ``channels_first``).
            x_ir (Tensor): Infrared features, same shape.

        Returns:
            tuple[Tensor, Tensor]: ``F~_R`` and ``F~_IR``, same shape and layout as the inputs.

        Raises:
            ValueError: If the shapes differ or do not have C = ``in_channels``.
        """
        dim = 1 if self.channels_first else -1
        if x_rgb.dim() != 4 or x_rgb.shape[dim] != self.in_channels:
            raise ValueError(f'StateSpaceChannelSwapping: expected 4-D inputs with '
                             f'{self.in_channels} channels at dim {dim}, got '
                             f'{tuple(x_rgb.shape)}')
        t_rgb, t_ir = swap_channel_quarters(x_rgb, x_ir, dim=dim)
        if self.channels_first:
            t_rgb, t_ir = t_rgb.permute(0, 2, 3, 1), t_ir.permute(0, 2, 3, 1)
        for block in self.blocks_rgb:
            t_rgb = block(t_rgb)
        for block in self.blocks_ir:
            t_ir = block(t_ir)
        if self.channels_first:
            t_rgb, t_ir = t_rgb.permute(0, 3, 1, 2), t_ir.permute(0, 3, 1, 2)
        return t_rgb, t_ir
