"""SegFormer's all-MLP decoder as the official SegFormer and GeminiFusion code write it.

Papers: E. Xie et al., "SegFormer", NeurIPS 2021, Sec. 3.2 (lightweight All-MLP decoder); D. Jia
et al., "GeminiFusion", ICML 2024 (the decoder of its segmentation models). Official code read:
``SegFormerHead`` in ``models/segformer.py`` of github.com/JiaDingCN/GeminiFusion (main), itself
NVlabs' SegFormer head.

Shape shorthand: B batch, C_i channels of input level i (i = 1..4, strides 4, 8, 16, 32),
H_i, W_i its size, E the embedding width (``channels``, official 256), K classes::

    e_i = Linear_i(c_i)                     per pixel, C_i -> E, with bias, *no* norm/activation
    e_i = resize(e_i, (H_1, W_1))           bilinear, align_corners False (i = 2..4)
    f   = ReLU(BN(Conv1x1([e_4, e_3, e_2, e_1])))   concatenation order c4..c1, 4E -> E
    out = Conv1x1(Dropout2d(f))             E -> K, (B, K, H_1, W_1)

How it differs from mmseg's ``SegformerHead``, and why this head exists: mmseg's head uses a
ConvModule (1x1 conv + BN + ReLU) per level and concatenates c1..c4. No weight mapping can undo
that ReLU, so an official checkpoint evaluates to the official logits only with this head
(``tools/model_converters/geminifusion_official_to_mmfusion.py``; configs
``geminifusion_mit-b{3,5}-official-head_*`` in ``projects/GeminiFusion/configs/``).
Parameter names: ``linear_c.<i-1>`` (official ``linear_c<i>.proj``), ``fusion_conv``
(``linear_fuse``), ``conv_seg`` (``linear_pred``); the rest is mmseg's ``BaseDecodeHead``
(losses, ``dropout``, ``predict_by_feat``).
"""
from typing import List

import torch
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import Tensor, nn

__all__ = ['SegformerMLPHead']


@MODELS.register_module()
class SegformerMLPHead(BaseDecodeHead):
    """Official SegFormer / GeminiFusion all-MLP decode head (see the module docstring).

    Args:
        interpolate_mode (str): Upsampling of levels 2..4 to level 1. Defaults to
            ``'bilinear'`` (official).
        **kwargs: mmseg ``BaseDecodeHead`` arguments (``in_channels`` (four levels),
            ``channels`` (E), ``num_classes``, ``dropout_ratio``, ``norm_cfg`` (of the fusion
            conv), ``align_corners``, ``in_index``, ``loss_decode``, ...);
            ``input_transform`` is ``'multiple_select'``.

    Raises:
        ValueError: If ``in_channels`` and ``in_index`` differ in length.
    """

    def __init__(self, interpolate_mode: str = 'bilinear', **kwargs):
        super().__init__(input_transform='multiple_select', **kwargs)
        if len(self.in_channels) != len(self.in_index):
            raise ValueError(f'{self.__class__.__name__}: {len(self.in_channels)} in_channels '
                             f'for {len(self.in_index)} in_index')
        self.interpolate_mode = interpolate_mode
        self.linear_c = nn.ModuleList(nn.Linear(c, self.channels) for c in self.in_channels)
        self.fusion_conv = ConvModule(
            in_channels=self.channels * len(self.in_channels),
            out_channels=self.channels,
            kernel_size=1,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg)

    def forward(self, inputs: List[Tensor]) -> Tensor:
        """Args:
            inputs (list[Tensor]): Backbone levels, (B, C_i, H_i, W_i).

        Returns:
            Tensor: Logits (B, K, H_1, W_1).
        """
        inputs = self._transform_inputs(inputs)
        size = inputs[0].shape[2:]
        embedded = []
        for idx in reversed(range(len(inputs))):  # official concatenation order c4 .. c1
            x = inputs[idx]
            e = self.linear_c[idx](x.flatten(2).transpose(1, 2))  # (B, H_i * W_i, E)
            e = e.transpose(1, 2).reshape(x.shape[0], -1, *x.shape[2:])
            if e.shape[2:] != size:
                e = resize(e, size=size, mode=self.interpolate_mode,
                           align_corners=self.align_corners)
            embedded.append(e)
        return self.cls_seg(self.fusion_conv(torch.cat(embedded, dim=1)))
