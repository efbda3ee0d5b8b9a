"""Two-stream CSP-Darknet with a fusion block at P3, P4 and P5 (Fusion-Mamba's backbone).

Paper: W. Dong et al., "Fusion-Mamba for Cross-modality Object Detection", arXiv 2404.09146
(IEEE TMM 2025), Sec. 3.1 (overall architecture, Fig. 2): a visible and an infrared stream,
each a YOLOv5/YOLOv8 backbone with its own weights, and a Fusion-Mamba block (FMB) on the
features of the last three stages (P3/8, P4/16, P5/32); the neck takes the sum of the two
enhanced features of each level.

Official code read to settle the wiring: ``models/transformer/yolov5l-fusionmamba.yaml`` of
github.com/EhanDong/Fusion-Mamba. There each FMB (``chnnel_swapping_Vmamba`` + ``CrossLayer``)
reads the two stage outputs, ``Add2`` adds its output to each stream (``x_rgb + out_rgb``,
``x_ir + out_ir``), the *enhanced* features are what the next stage of each stream reads (the
P4 stage reads the P3 ``Add2`` outputs, the P5 stage the P4 ones), and ``Add`` sums the two
enhanced features of a level for the neck. This module does the same: the fusion block returns
the enhanced pair (its residual included), the streams continue from it when
``fuse_into_streams=True`` (default, as the official model), and the neck gets
``y_rgb + y_ir``.

The stages are mmdet's own :class:`~mmdet.models.backbones.CSPDarknet` (YOLOv5's Focus stem,
CSP stages, SPP in the last stage; ``deepen_factor = widen_factor = 1.0`` is YOLOv5-l:
3/9/9/3 CSP blocks, 64/128/256/512/1024 channels); two instances are built and their
``stem``/``stage1..4`` are run in step, so nothing of the stock stages is re-implemented.

Shape shorthand: B batch, H, W input height and width (multiples of 32), C_i the channels of
level i (``int(c * widen_factor)`` for c in 64, 128, 256, 512, 1024 for i = 0..4, arch P5),
stride s_i = 2, 4, 8, 16, 32.
"""
import copy
from typing import Optional, Sequence, Tuple

from mmdet.models.backbones import CSPDarknet
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

__all__ = ['DualStreamCSPDarknet']


@MODELS.register_module()
class DualStreamCSPDarknet(BaseModule):
    """Visible and infrared CSP-Darknet streams fused by a block at each output level.

    Module order (one step per stock layer ``stem, stage1, ..., stage4``)::

        x_rgb, x_ir = rgb_stream.<layer>(x_rgb), ir_stream.<layer>(x_ir)
        if the layer index i is in out_indices:
            y_rgb, y_ir = fusions[i](x_rgb, x_ir)       (block output, residual included)
            x_rgb, x_ir = y_rgb, y_ir                   (if fuse_into_streams)
            out_i = y_rgb + y_ir                        -> neck

    With ``fusion_cfg=None`` there is no fusion block: ``out_i = x_rgb + x_ir`` (the no-fusion
    baseline of the paper's ablation, two independent streams added before the neck).

    Args:
        arch (str): CSP-Darknet architecture, ``'P5'`` or ``'P6'``. Defaults to ``'P5'``.
        deepen_factor (float): Depth multiplier of the CSP blocks. Defaults to 1.0 (YOLOv5-l).
        widen_factor (float): Channel multiplier. Defaults to 1.0 (YOLOv5-l).
        out_indices (Sequence[int]): Layers whose fused features are returned; 0 is the stem,
            i >= 1 stage i. Defaults to ``(2, 3, 4)`` (P3, P4, P5).
        fusion_cfg (dict, optional): Config of the fusion block built for every level in
            ``out_indices``, with ``in_channels=C_i`` added. It must take
            ``(x_rgb, x_ir)``, both (B, C_i, H/s_i, W/s_i), and return the enhanced pair of the
            same shapes. None: no fusion (plain sum). Defaults to
            ``dict(type='FusionMambaBlock')``.
        fuse_into_streams (bool): Feed the enhanced features back into each stream's next
            stage (official model) instead of only to the neck. Defaults to True.
        init_cfg (dict | list[dict], optional): Init config of this module as a whole.
            Defaults to None (each stream keeps its own init, the fusion blocks theirs).
        stream_init_cfg (dict, optional): ``init_cfg`` of both CSPDarknet streams. None keeps
            the stock CSPDarknet default (Kaiming uniform on the convolutions).
        **stream_kwargs: Further arguments of :class:`~mmdet.models.backbones.CSPDarknet`,
            the same for both streams (``frozen_stages``, ``use_depthwise``,
            ``arch_ovewrite``, ``spp_kernal_sizes``, ``conv_cfg``, ``norm_cfg``, ``act_cfg``,
            ``norm_eval``).

    Raises:
        ValueError: If ``out_indices`` is empty or names a layer the architecture lacks.
        TypeError: From ``forward``, if the two inputs differ in shape.
    """

    def __init__(self,
                 arch: str = 'P5',
                 deepen_factor: float = 1.0,
                 widen_factor: float = 1.0,
                 out_indices: Sequence[int] = (2, 3, 4),
                 fusion_cfg: Optional[dict] = dict(type='FusionMambaBlock'),
                 fuse_into_streams: bool = True,
                 init_cfg=None,
                 stream_init_cfg: Optional[dict] = None,
                 **stream_kwargs) -> None:
        super().__init__(init_cfg=init_cfg)
        arch_setting = stream_kwargs.get('arch_ovewrite') or CSPDarknet.arch_settings[arch]
        num_layers = len(arch_setting) + 1
        out_indices = tuple(out_indices)
        if not out_indices or any(i not in range(num_layers) for i in out_indices):
            raise ValueError(
                f'{self.__class__.__name__}: out_indices must be a non-empty subset of '
                f'0..{num_layers - 1} (0 = stem, i = stage i) for arch {arch!r}, got '
                f'{out_indices}')
        self.out_indices = out_indices
        self.fuse_into_streams = fuse_into_streams
        # C_i of layer i, as CSPDarknet computes them
        self.layer_channels = [int(arch_setting[0][0] * widen_factor)] + [
            int(setting[1] * widen_factor) for setting in arch_setting]

        if stream_init_cfg is not None:
            stream_kwargs['init_cfg'] = stream_init_cfg
        streams = {}
        for name in ('rgb_stream', 'ir_stream'):
            streams[name] = CSPDarknet(
                arch=arch,
                deepen_factor=deepen_factor,
                widen_factor=widen_factor,
                out_indices=out_indices,
                **copy.deepcopy(stream_kwargs))
        self.rgb_stream = streams['rgb_stream']
        self.ir_stream = streams['ir_stream']

        if fusion_cfg is None:
            self.fusions = None
        else:
            self.fusions = nn.ModuleDict({
                str(i): MODELS.build(dict(copy.deepcopy(fusion_cfg),
                                          in_channels=self.layer_channels[i]))
                for i in out_indices
            })

    @property
    def out_channels(self) -> Tuple[int, ...]:
        """Channels C_i of the returned levels, in ``out_indices`` order."""
        return tuple(self.layer_channels[i] for i in self.out_indices)

    def forward(self, img: Tensor, img_ir: Tensor) -> Tuple[Tensor, ...]:
        """Run both streams and fuse at every output level.

        Args:
            img (Tensor): Visible images, (B, 3, H, W).
            img_ir (Tensor): Infrared images, (B, 3, H, W), registered with ``img``.

        Returns:
            tuple[Tensor]: For each index i of ``out_indices``, the fused feature
            (B, C_i, H / s_i, W / s_i).

        Raises:
            TypeError: If ``img`` and ``img_ir`` differ in shape.
        """
        if img.shape != img_ir.shape:
            raise TypeError(
                f'{self.__class__.__name__}: visible input {tuple(img.shape)} and infrared '
                f'input {tuple(img_ir.shape)} must have the same shape (B, 3, H, W)')
        x_rgb, x_ir = img, img_ir
        outs = []
        # layers after the last returned level feed nothing that is returned
        for i, name in enumerate(self.rgb_stream.layers[:max(self.out_indices) + 1]):
            x_rgb = getattr(self.rgb_stream, name)(x_rgb)
            x_ir = getattr(self.ir_stream, name)(x_ir)
            if i not in self.out_indices:
                continue
            if self.fusions is None:
                outs.append(x_rgb + x_ir)
                continue
            y_rgb, y_ir = self.fusions[str(i)](x_rgb, x_ir)
            if self.fuse_into_streams:
                x_rgb, x_ir = y_rgb, y_ir
            outs.append(y_rgb + y_ir)
        return tuple(outs)
