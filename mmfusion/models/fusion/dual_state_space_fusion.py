"""Dual State Space Fusion (DSSF), the deep-fusion half of Fusion-Mamba's FMB.

Paper: W. Dong et al., "Fusion-Mamba for Cross-modality Object Detection", arXiv 2404.09146
(IEEE TMM 2025), Sec. 3 (DSSF: projection of both modalities into a hidden state space by
selective scans, gated dual cross-modal mixing, projection back, residual; N stacked blocks).
Official code read for the details: ``Cross_modal_Vmaba_module``, ``Cross_Block`` and
``CrossLayer`` in ``models/common.py`` of github.com/EhanDong/Fusion-Mamba (N = 8 in
``yolov5l-fusionmamba.yaml``). Built from the pieces of :class:`~mmfusion.models.layers.SS2D`
(VMamba v0: in-projection, depth-wise conv, cross-scan, selective scan, cross-merge, LayerNorm,
out-projection), not a copy of it.

Shape shorthand: B batch, H, W height and width, L = H * W, C channels, d_inner = expand * C,
K = 4 scan directions. Subscripts R (RGB) and IR (infrared).

One DSSF block (:class:`DualStateSpaceFusionBlock`), for m in {R, IR}, inputs F_m (B, H, W, C)::

    x_m, g_m = split(Linear_m(LN_m(F_m)))                 in-projection C -> 2 d_inner
    y_m = LN'_m(SS2D-scan(SiLU(DWConv_m(x_m))))            hidden-state features (B, H, W, d_inner)
    z_m = SiLU(g_m)                                        gate branch
    y'_R  = y_R  * z_R  + y_IR * z_R                       dual gating: each stream's gate also
    y'_IR = y_IR * z_IR + y_R  * z_IR                      gates the other stream's features
    F^_m = F_m + DropPath(Linear'_m(y'_m))                 out-projection d_inner -> C, residual

``SS2D-scan`` is cross-scan, the K selective scans and cross-merge of SS2D.
:class:`DualStateSpaceFusion` chains N such blocks: block k+1 takes block k's outputs.

``single_branch=True`` is the paper's "single attention branch" ablation, defined here as one
direction of the dual gating only: the RGB stream keeps its cross-modal term
(``y'_R = y_R * z_R + y_IR * z_R``) and the infrared stream gets none (``y'_IR = y_IR * z_IR``,
plain VMamba gating). Everything else, parameters included, is unchanged.

Scan parameters: with ``share_ssm=True`` (default, as the official code, where one set of
``x_proj_weight``, ``dt_projs_weight``, ``dt_projs_bias``, ``A_logs`` and ``Ds`` serves both
modalities) both streams are scanned in one shared hidden state space, by the RGB SS2D's
parameters (the two streams go through one selective-scan call, stacked on the batch axis); the
infrared SS2D then holds only its own in/out projections, depth-wise conv and LayerNorm (its scan
parameters are removed, so no parameter is unused). ``share_ssm=False`` gives each modality its own
scan parameters. In/out projections, conv and norms are always per modality.

Fixes of the official code's defects (each a deliberate difference):

1. Chaining. The official ``CrossLayer`` calls every block on the same ``(x1, x2)`` (the loop never
   updates its input), so only the last of the N blocks affects the output and the other N - 1
   are dead weight. Here block k+1 takes block k's output.
2. Gating. The official module overwrites ``y1`` with the mixed RGB result before computing the
   infrared mix, so the infrared output is ``(y_R * z_R + y_IR * z_R) * z_IR + y_IR * z_IR``.
   Here both mixes use the hidden-state features y_R, y_IR as the paper's equations state.
3. No ``.cuda()``: everything runs on CPU and CUDA.
4. No hard import of mamba-ssm: the scans go through :func:`mmfusion.ops.selective_scan`
   (mamba-ssm's kernel for CUDA tensors when it imports, an exact PyTorch scan otherwise).

``official_dssf=True`` switches fixes 1 and 2 off and computes exactly what the official
``CrossLayer`` computes (every block fed the DSSF input, only the last block's output kept; the
infrared mix gated from the already-mixed RGB result), so that an official checkpoint, trained
with these defects, gives the outputs it gave when trained
(``tools/model_converters/fusion_mamba_official_to_mmfusion.py``). The first N - 1 blocks then
receive no gradient (use ``find_unused_parameters=True`` when training this way with DDP). The
corrected behaviour stays the default: it is what the paper's equations describe, and with the
official loop N - 1 of the N blocks (7 of 8, about 87% of the DSSF parameters) are dead weight.

Other differences: LayerNorm epsilon 1e-5 (the official ``CrossLayer`` passes ``nn.LayerNorm``,
overriding ``Cross_Block``'s 1e-6 default); inputs (B, C, H, W) by default
(``channels_first=False`` for (B, H, W, C)).
"""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import DropPath
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmfusion.models.layers import SS2D, cross_merge, cross_scan

__all__ = ['DualStateSpaceFusionBlock', 'DualStateSpaceFusion']

# The SS2D parameters that define the hidden state space (shared by both streams by default).
SSM_PARAMS = ('x_proj_weight', 'dt_projs_weight', 'dt_projs_bias', 'A_logs', 'Ds')


@MODELS.register_module()
class DualStateSpaceFusionBlock(BaseModule):
    """One DSSF block: dual-gated fusion of two streams in a hidden state space, with residual.

    Args:
        in_channels (int): Channels C of both streams.
        single_branch (bool): Only the RGB stream gets the cross-modal gated term (the
            "single attention branch" ablation, see the module docstring). Defaults to False.
        share_ssm (bool): One set of scan parameters for both streams (official). Defaults to
            True.
        drop_path (float): Stochastic depth rate on each stream's update. Defaults to 0.
        norm_eps (float): Epsilon of the input LayerNorms. Defaults to 1e-5 (official).
        official_dssf (bool): Official infrared gating, from the already-mixed RGB result:
            ``y'_IR = y'_R * z_IR + y_IR * z_IR`` (see the module docstring). Defaults to
            False (the paper's equation).
        init_cfg (dict, optional): mmengine init config. Defaults to None.
        **ss2d_kwargs: Arguments of :class:`~mmfusion.models.layers.SS2D` (``d_state``,
            ``expand``, ``dt_rank``, ``dropout``, ...); ``channels_first`` is not accepted.
    """

    def __init__(self,
                 in_channels: int,
                 single_branch: bool = False,
                 share_ssm: bool = True,
                 drop_path: float = 0.,
                 norm_eps: float = 1e-5,
                 official_dssf: bool = False,
                 init_cfg: Optional[dict] = None,
                 **ss2d_kwargs):
        super().__init__(init_cfg=init_cfg)
        if ss2d_kwargs.pop('channels_first', False):
            raise ValueError('DualStateSpaceFusionBlock works channels-last; set channels_first '
                             'on DualStateSpaceFusion instead')
        self.single_branch = single_branch
        self.share_ssm = share_ssm
        self.official_dssf = official_dssf
        self.norm_rgb = nn.LayerNorm(in_channels, eps=norm_eps)
        self.norm_ir = nn.LayerNorm(in_channels, eps=norm_eps)
        self.ss2d_rgb = SS2D(in_channels, **ss2d_kwargs)
        self.ss2d_ir = SS2D(in_channels, **ss2d_kwargs)
        if share_ssm:  # scanned with ss2d_rgb's parameters; drop the unused copies
            for name in SSM_PARAMS:
                delattr(self.ss2d_ir, name)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    @staticmethod
    def _enter(ss2d: SS2D, x: Tensor) -> Tuple[Tensor, Tensor]:
        """In-projection, depth-wise conv and cross-scan of one stream.

        Args:
            x (Tensor): Normalised features, (B, H, W, C).

        Returns:
            tuple[Tensor, Tensor]: Sequences (B, K, d_inner, L) and the gate z = SiLU(g),
            (B, H, W, d_inner).
        """
        x, gate = ss2d.in_proj(x).chunk(2, dim=-1)
        x = ss2d.act(ss2d.conv2d(x.permute(0, 3, 1, 2).contiguous()))
        return cross_scan(x), F.silu(gate)

    @staticmethod
    def _leave(ss2d: SS2D, ys: Tensor, shape: torch.Size, dtype: torch.dtype) -> Tensor:
        """Cross-merge and output LayerNorm: (B, K, d_inner, L) -> y (B, H, W, d_inner)."""
        batch, height, width = shape[:3]
        y = cross_merge(ys, height, width).transpose(1, 2)
        return ss2d.out_norm(y.reshape(batch, height, width, -1).to(dtype))

    def forward(self, x_rgb: Tensor, x_ir: Tensor) -> Tuple[Tensor, Tensor]:
        """Args:
            x_rgb (Tensor): RGB stream F_R, (B, H, W, C).
            x_ir (Tensor): Infrared stream F_IR, (B, H, W, C).

        Returns:
            tuple[Tensor, Tensor]: F^_R, F^_IR, (B, H, W, C) each (residual included).
        """
        xs_rgb, z_rgb = self._enter(self.ss2d_rgb, self.norm_rgb(x_rgb))
        xs_ir, z_ir = self._enter(self.ss2d_ir, self.norm_ir(x_ir))
        if self.share_ssm:  # one hidden state space: one scan call for both streams
            ys_rgb, ys_ir = self.ss2d_rgb.scan(torch.cat([xs_rgb, xs_ir])).chunk(2)
        else:
            ys_rgb, ys_ir = self.ss2d_rgb.scan(xs_rgb), self.ss2d_ir.scan(xs_ir)
        y_rgb = self._leave(self.ss2d_rgb, ys_rgb, x_rgb.shape, x_rgb.dtype)
        y_ir = self._leave(self.ss2d_ir, ys_ir, x_ir.shape, x_ir.dtype)

        mixed_rgb = y_rgb * z_rgb + y_ir * z_rgb
        if self.single_branch:
            mixed_ir = y_ir * z_ir
        else:  # official: the RGB term is the already-mixed RGB result
            mixed_ir = y_ir * z_ir + (mixed_rgb if self.official_dssf else y_rgb) * z_ir
        out_rgb = self.ss2d_rgb.dropout(self.ss2d_rgb.out_proj(mixed_rgb))
        out_ir = self.ss2d_ir.dropout(self.ss2d_ir.out_proj(mixed_ir))
        return x_rgb + self.drop_path(out_rgb), x_ir + self.drop_path(out_ir)


@MODELS.register_module()
class DualStateSpaceFusion(BaseModule):
    """DSSF: N chained :class:`DualStateSpaceFusionBlock` (block k+1 takes block k's output).

    Args:
        in_channels (int): Channels C of both streams.
        num_blocks (int): N. Defaults to 8 (official YOLOv5-l config).
        single_branch (bool): "Single attention branch" ablation. Defaults to False.
        share_ssm (bool): Scan parameters shared by both streams (official). Defaults to True.
        drop_path (float | Sequence[float]): Stochastic depth rate(s), one per block or one for
            all. Defaults to 0.
        norm_eps (float): LayerNorm epsilon. Defaults to 1e-5.
        official_dssf (bool): Reproduce the official ``CrossLayer`` exactly: blocks not
            chained (each takes this module's input, the last block's output is returned) and
            the official infrared gating. For official checkpoints; see the module docstring.
            Defaults to False.
        channels_first (bool): Inputs/outputs (B, C, H, W) if True, else (B, H, W, C).
            Defaults to True.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
        **ss2d_kwargs: Arguments of :class:`~mmfusion.models.layers.SS2D`.

    Raises:
        ValueError: If ``num_blocks`` < 1 or the drop-path list has the wrong length.
    """

    def __init__(self,
                 in_channels: int,
                 num_blocks: int = 8,
                 single_branch: bool = False,
                 share_ssm: bool = True,
                 drop_path: Union[float, Sequence[float]] = 0.,
                 norm_eps: float = 1e-5,
                 official_dssf: bool = False,
                 channels_first: bool = True,
                 init_cfg: Optional[dict] = None,
                 **ss2d_kwargs):
        super().__init__(init_cfg=init_cfg)
        if num_blocks < 1:
            raise ValueError(f'DualStateSpaceFusion: num_blocks must be >= 1, got {num_blocks}')
        rates = (list(drop_path) if isinstance(drop_path, (list, tuple)) else
                 [drop_path] * num_blocks)
        if len(rates) != num_blocks:
            raise ValueError(f'DualStateSpaceFusion: {len(rates)} drop-path rates for '
                             f'{num_blocks} blocks')
        self.in_channels = in_channels
        self.channels_first = channels_first
        self.official_dssf = official_dssf
        self.blocks = nn.ModuleList(
            DualStateSpaceFusionBlock(in_channels, single_branch=single_branch,
                                      share_ssm=share_ssm, drop_path=rate, norm_eps=norm_eps,
                                      official_dssf=official_dssf, **ss2d_kwargs)
            for rate in rates)

    def forward(self, x_rgb: Tensor, x_ir: Tensor) -> Tuple[Tensor, Tensor]:
        """Args:
            x_rgb (Tensor): RGB features, (B, C, H, W) (or (B, H, W, C) if not
                ``channels_first``).
            x_ir (Tensor): Infrared features, same shape.

        Returns:
            tuple[Tensor, Tensor]: Both streams after the N blocks, same shape and layout.

        Raises:
            ValueError: If the shapes differ or do not have C = ``in_channels``.
        """
        dim = 1 if self.channels_first else -1
        if (x_rgb.shape != x_ir.shape or x_rgb.dim() != 4
                or x_rgb.shape[dim] != self.in_channels):
            raise ValueError(f'DualStateSpaceFusion: expected two 4-D inputs of one shape with '
                             f'{self.in_channels} channels at dim {dim}, got '
                             f'{tuple(x_rgb.shape)} and {tuple(x_ir.shape)}')
        if self.channels_first:
            x_rgb, x_ir = x_rgb.permute(0, 2, 3, 1), x_ir.permute(0, 2, 3, 1)
        if self.official_dssf:  # official loop: every block on the input, the last one kept
            x_rgb, x_ir = self.blocks[-1](x_rgb, x_ir)
        else:
            for block in self.blocks:
                x_rgb, x_ir = block(x_rgb, x_ir)
        if self.channels_first:
            x_rgb, x_ir = x_rgb.permute(0, 3, 1, 2), x_ir.permute(0, 3, 1, 2)
        return x_rgb, x_ir
