"""Fusion-Mamba block (FMB): SSCS then DSSF, with the residual back into both streams.

Paper: W. Dong et al., "Fusion-Mamba for Cross-modality Object Detection", arXiv 2404.09146
(IEEE TMM 2025), Sec. 3 (the FMB between the two backbone streams at P3, P4 and P5; its SSCS and
DSSF modules) and the ablations of Sec. 4 (without SSCS, without DSSF, single attention branch).
Official code read for the details: ``models/transformer/yolov5l-fusionmamba.yaml`` and
``models/common.py`` of github.com/EhanDong/Fusion-Mamba: at each level
``chnnel_swapping_Vmamba(C, 1)`` -> ``CrossLayer(C, 8)`` -> ``Add2`` (stream input + result).

Shape shorthand: B batch, C channels (C % 4 == 0 with SSCS), H, W height and width.

Computation, inputs F_R, F_IR (B, C, H, W)::

    F~_R, F~_IR = SSCS(F_R, F_IR)              channel swapping + a VSS block per stream
    F^_R, F^_IR = DSSF(F~_R, F~_IR)            N chained dual-gated hidden-state fusion blocks
    out_R  = F_R  + F^_R                       residual into each stream (official ``Add2``)
    out_IR = F_IR + F^_IR

Ablation switches (paper Sec. 4): ``use_sscs=False`` skips SSCS (DSSF takes F_R, F_IR),
``use_dssf=False`` skips DSSF (out = F + SSCS(F)), both False returns the inputs unchanged (the
two-stream baseline without FMB), ``single_branch=True`` keeps only one direction of DSSF's dual
gating (see :mod:`mmfusion.models.fusion.dual_state_space_fusion`). SSCS and DSSF run
channels-last inside the FMB: the inputs are permuted once, not per module.

Size at the official YOLOv5-l widths (N = 8, d_state 16, expand 2; SSCS / DSSF shares): C = 256
(P3) 8.88 M parameters (1.14 M / 7.74 M), C = 512 (P4) 33.22 M (4.11 M / 29.11 M), C = 1024 (P5)
128.31 M (15.55 M / 112.75 M); 170.4 M for the three levels. Speed and memory against transformer
cross-attention fusion: ``tools/analysis_tools/benchmark_fusion_mamba_block.py``.

Fixes of the official code (details in :mod:`~mmfusion.models.fusion.state_space_channel_swapping`
and :mod:`~mmfusion.models.fusion.dual_state_space_fusion`): the N DSSF blocks are chained
(officially all N take the same input, so only the last one counts); the infrared gating uses the
un-mixed RGB features (officially the already-mixed RGB output); no ``.cuda()``; no hard import of
mamba-ssm (the selective scans dispatch through :func:`mmfusion.ops.selective_scan`, PyTorch on
CPU).
"""
from typing import Optional, Tuple

from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor

from .dual_state_space_fusion import DualStateSpaceFusion
from .state_space_channel_swapping import StateSpaceChannelSwapping

__all__ = ['FusionMambaBlock']


@MODELS.register_module()
class FusionMambaBlock(BaseModule):
    """Fusion-Mamba block: SSCS, then N chained DSSF blocks, then the residual per stream.

    Args:
        in_channels (int): Channels C of both streams (divisible by 4 if ``use_sscs``).
        num_dssf_blocks (int): N, DSSF blocks chained. Defaults to 8 (official config).
        use_sscs (bool): Apply SSCS. Defaults to True.
        use_dssf (bool): Apply DSSF. Defaults to True.
        single_branch (bool): DSSF with one direction of the dual gating only (RGB stream
            gated with the infrared features, not the reverse). Defaults to False.
        sscs_depth (int): VSS blocks per stream in SSCS. Defaults to 1 (official config).
        share_ssm (bool): DSSF scan parameters shared by both streams (official). Defaults to
            True.
        drop_path (float): Stochastic depth rate of every VSS / DSSF block. Defaults to 0.
        official_dssf (bool): DSSF exactly as the official ``CrossLayer`` (blocks not chained,
            official infrared gating), for official checkpoints; see
            :mod:`~mmfusion.models.fusion.dual_state_space_fusion`. Defaults to False.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
        **ss2d_kwargs: Arguments of :class:`~mmfusion.models.layers.SS2D` for every scan
            (``d_state`` (default 16), ``expand`` (2), ``dt_rank``, ``dropout``, ...).

    Raises:
        ValueError: If ``use_sscs`` and ``in_channels`` is not divisible by 4, or
            ``num_dssf_blocks`` < 1 with ``use_dssf``.
    """

    def __init__(self,
                 in_channels: int,
                 num_dssf_blocks: int = 8,
                 use_sscs: bool = True,
                 use_dssf: bool = True,
                 single_branch: bool = False,
                 sscs_depth: int = 1,
                 share_ssm: bool = True,
                 drop_path: float = 0.,
                 official_dssf: bool = False,
                 init_cfg: Optional[dict] = None,
                 **ss2d_kwargs):
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.sscs = StateSpaceChannelSwapping(
            in_channels, depth=sscs_depth, drop_path=drop_path, channels_first=False,
            **ss2d_kwargs) if use_sscs else None
        self.dssf = DualStateSpaceFusion(
            in_channels, num_blocks=num_dssf_blocks, single_branch=single_branch,
            share_ssm=share_ssm, drop_path=drop_path, official_dssf=official_dssf,
            channels_first=False, **ss2d_kwargs) if use_dssf else None

    def forward(self, x_rgb: Tensor, x_ir: Tensor) -> Tuple[Tensor, Tensor]:
        """Args:
            x_rgb (Tensor): RGB features F_R, (B, C, H, W).
            x_ir (Tensor): Infrared features F_IR, (B, C, H, W).

        Returns:
            tuple[Tensor, Tensor]: ``F_R + F^_R`` and ``F_IR + F^_IR``, (B, C, H, W) each.

        Raises:
            ValueError: If the inputs are not two (B, C, H, W) tensors of one shape with
                C = ``in_channels``.
        """
        if (x_rgb.shape != x_ir.shape or x_rgb.dim() != 4
                or x_rgb.shape[1] != self.in_channels):
            raise ValueError(f'FusionMambaBlock: expected two (B, {self.in_channels}, H, W) '
                             f'inputs of one shape, got {tuple(x_rgb.shape)} and '
                             f'{tuple(x_ir.shape)}')
        if self.sscs is None and self.dssf is None:
            return x_rgb, x_ir
        f_rgb, f_ir = x_rgb.permute(0, 2, 3, 1), x_ir.permute(0, 2, 3, 1)
        if self.sscs is not None:
            f_rgb, f_ir = self.sscs(f_rgb, f_ir)
        if self.dssf is not None:
            f_rgb, f_ir = self.dssf(f_rgb, f_ir)
        return x_rgb + f_rgb.permute(0, 3, 1, 2), x_ir + f_ir.permute(0, 3, 1, 2)
