"""Two-modality Mix Transformer (MiT) with a GeminiFusion block in every transformer layer.

Paper: D. Jia et al., "GeminiFusion: Efficient Pixel-wise Multimodal Fusion for Vision
Transformer", ICML 2024 (arXiv 2406.01210), Sec. 3 and Fig. 2(a): two modality streams share one
backbone; each layer fuses them pixel by pixel. Backbone: E. Xie et al., "SegFormer: Simple and
Efficient Design for Semantic Segmentation with Transformers", NeurIPS 2021 (MiT-B0..B5).
Structure checked against the official code (github.com/JiaDingCN/GeminiFusion, main,
``models/mix_transformer.py``, ``models/modules.py``), which runs every module on a list of the
two modalities:

- shared across the modalities (one weight, applied to each stream): the overlapping patch
  embedding convolutions, the attention's q/k/v projections, spatial-reduction convolution and
  output projection, the Mix-FFN;
- one per modality (``LayerNormParallel``: ``ln_0``, ``ln_1``): *every* LayerNorm, i.e. the patch
  embedding norm, ``norm1`` and ``norm2`` of each block, the spatial-reduction norm of the
  attention, and the norm closing each stage;
- the GeminiFusion block (:class:`~mmfusion.models.fusion.GeminiFusionAttention`) in every block of
  every stage, on the self-attention output of both modalities (heads concatenated, (B, N, C))
  *before* the shared output projection; then projection, dropout, drop path and the residual
  as in SegFormer.

Shape shorthand: B batch, H, W input height and width in pixels, C_i channels of stage i
(``embed_dims * num_heads[i]``), N tokens of a stage. Both modalities must have the same (H, W).

Implementation. Both modalities run through the *stock* mmseg modules as one batch of 2B
samples, modality a first: ``torch.cat([x_a, x_b])``. A shared module then is simply the stock
module; a per-modality norm is :class:`PerModalityNorm`, which normalises the first B samples
with its norm 0 and the last B with its norm 1. Reused unchanged from mmseg
(``mmseg.models.backbones.mit``): ``MixVisionTransformer`` (stage loop, forward, weight init,
``init_cfg``), ``PatchEmbed``, ``TransformerEncoderLayer`` (its forward), ``MixFFN``, and
``EfficientMultiheadAttention``'s parameters (``attn.in_proj_*``, ``attn.out_proj``, ``sr``).
Re-implemented: ``EfficientMultiheadAttention.forward`` only, because the stock one calls
``nn.MultiheadAttention``, which applies the output projection inside, and the fusion must sit
before it; the override computes the same scaled dot-product attention from the same weights
(``F.scaled_dot_product_attention``), fuses, then applies ``attn.out_proj``. With the fusion
switched off (a zero output projection in the fusion block) and equal per-modality norms, each
stream equals the stock single-modality MiT (tests/test_models/test_gemini_segmentation.py).

Pretrained weights. A stock mmseg MiT checkpoint (e.g. converted with mmseg's
``tools/model_converters/mit2mmseg.py``) loads through ``init_cfg=dict(type='Pretrained',
checkpoint=...)`` (``prefix='backbone.'`` for a full SegFormer checkpoint): the parameter names of
the shared modules are the stock names, and :class:`PerModalityNorm` copies a single-modality
norm (``<name>.weight``) into both modality norms (``<name>.0.weight``, ``<name>.1.weight``), as the
official ``expand_state_dict`` does. The fusion blocks are not in such a checkpoint and keep their
initialisation (reported by mmengine as missing keys).

Deviations from the official code: the official MiT always has qkv bias and uses LayerNorm
eps 1e-6 (the defaults here); the official patch embedding, attention and FFN are not mmseg's
modules but compute the same functions (Mix-FFN: Linear = 1x1 conv).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmseg.models.backbones.mit import (EfficientMultiheadAttention, MixVisionTransformer,
                                        TransformerEncoderLayer)
from mmseg.models.utils import nchw_to_nlc, nlc_to_nchw
from mmseg.registry import MODELS
from torch import Tensor, nn

from ..fusion.gemini_fusion import GeminiFusionAttention

__all__ = ['PerModalityNorm', 'GeminiEfficientMultiheadAttention',
           'GeminiTransformerEncoderLayer', 'GeminiMixVisionTransformer']

NUM_MODALITIES = 2


class PerModalityNorm(nn.ModuleList):
    """One normalisation layer per modality, applied to a modality-stacked batch.

    Args:
        norm_cfg (dict): mmcv norm config, e.g. ``dict(type='LN', eps=1e-6)``.
        num_features (int): C.
        num_modalities (int): M. Default 2.

    Forward: x of shape (M * B, ..., C), the M modalities stacked along dim 0 (modality 0
    first); returns the same shape, the m-th block of B samples normalised by norm m.

    Loading: a state dict holding a single norm under this module's name (``<prefix>weight``,
    ``<prefix>bias``, ... as a single-modality model has it) is expanded to every modality
    (``<prefix>0.weight``, ``<prefix>1.weight``, ...) before loading.

    Raises:
        ValueError: from ``forward``, if dim 0 of x is not divisible by M.
    """

    def __init__(self, norm_cfg: dict, num_features: int, num_modalities: int = NUM_MODALITIES):
        super().__init__(
            [build_norm_layer(norm_cfg, num_features)[1] for _ in range(num_modalities)])

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] % len(self):
            raise ValueError(f'{self.__class__.__name__} expects the {len(self)} modalities '
                             f'stacked along dim 0, got a batch of {x.shape[0]}')
        return torch.cat([norm(part) for norm, part in zip(self, x.chunk(len(self), dim=0))],
                         dim=0)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        single = [k for k in state_dict
                  if k.startswith(prefix) and '.' not in k[len(prefix):]]
        for key in single:
            name = key[len(prefix):]
            if f'{prefix}0.{name}' in state_dict:
                continue
            value = state_dict.pop(key)
            for i in range(len(self)):
                state_dict[f'{prefix}{i}.{name}'] = value
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class GeminiEfficientMultiheadAttention(EfficientMultiheadAttention):
    """SegFormer's efficient (spatial-reduction) self-attention, shared by both modalities, with
    GeminiFusion on its output before the shared output projection.

    Args:
        embed_dims (int): C.
        num_heads (int): Self-attention heads.
        fusion_cfg (dict, optional): Keyword arguments of :class:`GeminiFusionAttention`
            (``num_heads`` (default 8, official), ``use_relation_discriminator``, ``use_noise``,
            ``shared_noise``, ``relation_scaled_token``). None: no fusion (two independent
            streams; ablation / test reference).
        **kwargs: ``attn_drop``, ``proj_drop``, ``dropout_layer``, ``batch_first``,
            ``qkv_bias``, ``norm_cfg``, ``sr_ratio`` as in mmseg's
            ``EfficientMultiheadAttention``.

    Forward: x (2B, N, C), the two modalities stacked along dim 0; hw_shape (H_i, W_i) with
    H_i * W_i = N; identity (2B, N, C) or None (x). Returns (2B, N, C).
    """

    def __init__(self, embed_dims: int, num_heads: int, fusion_cfg: Optional[dict] = None,
                 **kwargs):
        norm_cfg = kwargs.get('norm_cfg', dict(type='LN'))
        super().__init__(embed_dims, num_heads, **kwargs)
        if self.sr_ratio > 1:
            self.norm = PerModalityNorm(norm_cfg, embed_dims)
        self.fusion = (GeminiFusionAttention(embed_dims, **fusion_cfg)
                       if fusion_cfg is not None else None)

    def _attention_before_projection(self, x_q: Tensor, x_kv: Tensor) -> Tensor:
        """softmax(q k^T / sqrt(d)) v with the heads concatenated: (2B, N, C), no out_proj.

        Same weights and function as ``self.attn`` (``nn.MultiheadAttention``) without its output
        projection; attention dropout ``self.attn.dropout`` in training.
        """
        b, n, c = x_q.shape
        h = self.num_heads
        weight_q, weight_k, weight_v = self.attn.in_proj_weight.chunk(3)
        bias = self.attn.in_proj_bias
        bias_q, bias_k, bias_v = bias.chunk(3) if bias is not None else (None, None, None)
        q = F.linear(x_q, weight_q, bias_q).view(b, n, h, c // h).transpose(1, 2)
        k = F.linear(x_kv, weight_k, bias_k).view(b, -1, h, c // h).transpose(1, 2)
        v = F.linear(x_kv, weight_v, bias_v).view(b, -1, h, c // h).transpose(1, 2)
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn.dropout if self.training else 0.0)
        return out.transpose(1, 2).reshape(b, n, c)

    def forward(self, x: Tensor, hw_shape: Tuple[int, int],
                identity: Optional[Tensor] = None) -> Tensor:
        if self.sr_ratio > 1:
            x_kv = self.norm(nchw_to_nlc(self.sr(nlc_to_nchw(x, hw_shape))))
        else:
            x_kv = x
        if identity is None:
            identity = x
        out = self._attention_before_projection(x, x_kv)
        if self.fusion is not None:
            out = torch.cat(self.fusion(*out.chunk(NUM_MODALITIES, dim=0)), dim=0)
        out = self.attn.out_proj(out)
        return identity + self.dropout_layer(self.proj_drop(out))


class GeminiTransformerEncoderLayer(TransformerEncoderLayer):
    """SegFormer encoder layer (stock forward) with per-modality norms and fused attention.

    Args: as mmseg's ``TransformerEncoderLayer`` plus ``fusion_cfg`` (see
    :class:`GeminiEfficientMultiheadAttention`). Forward: x (2B, N, C), hw_shape; returns
    (2B, N, C).
    """

    def __init__(self, embed_dims: int, num_heads: int, feedforward_channels: int,
                 drop_rate: float = 0., attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0., qkv_bias: bool = True,
                 act_cfg: dict = dict(type='GELU'), norm_cfg: dict = dict(type='LN'),
                 batch_first: bool = True, sr_ratio: int = 1, with_cp: bool = False,
                 fusion_cfg: Optional[dict] = None):
        super().__init__(
            embed_dims=embed_dims, num_heads=num_heads,
            feedforward_channels=feedforward_channels, drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate, qkv_bias=qkv_bias,
            act_cfg=act_cfg, norm_cfg=norm_cfg, batch_first=batch_first, sr_ratio=sr_ratio,
            with_cp=with_cp)
        self.norm1 = PerModalityNorm(norm_cfg, embed_dims)
        self.norm2 = PerModalityNorm(norm_cfg, embed_dims)
        self.attn = GeminiEfficientMultiheadAttention(
            embed_dims=embed_dims,
            num_heads=num_heads,
            fusion_cfg=fusion_cfg,
            attn_drop=attn_drop_rate,
            proj_drop=drop_rate,
            dropout_layer=dict(type='DropPath', drop_prob=drop_path_rate),
            batch_first=batch_first,
            qkv_bias=qkv_bias,
            norm_cfg=norm_cfg,
            sr_ratio=sr_ratio)


@MODELS.register_module()
class GeminiMixVisionTransformer(MixVisionTransformer):
    """MiT backbone shared by two aligned modalities (e.g. RGB and encoded depth), fused by
    GeminiFusion in every transformer layer.

    Args:
        arch (str, optional): Preset ``'b0'`` .. ``'b5'`` (SegFormer's MiT-B0..B5, as mmseg's
            SegFormer configs): sets ``embed_dims``, ``num_layers``, ``num_heads``,
            ``sr_ratios``; any of these four given explicitly overrides the preset's value.
            None: all four must be given.
        embed_dims (int, optional): Base width; stage i has ``embed_dims * num_heads[i]``
            channels.
        num_layers (Sequence[int], optional): Transformer layers per stage.
        num_heads (Sequence[int], optional): Self-attention heads per stage.
        sr_ratios (Sequence[int], optional): Spatial-reduction ratio per stage.
        fusion_cfg (dict, optional): Keyword arguments of every
            :class:`~mmfusion.models.fusion.GeminiFusionAttention` (``embed_dims`` is the
            stage's). Default ``dict(num_heads=8)`` (official ``n_heads=8`` in every stage).
            None: no fusion (two independent streams).
        mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, drop_path_rate, act_cfg, norm_cfg,
            with_cp: As mmseg's ``MixVisionTransformer`` (same defaults; ``norm_cfg`` builds
            every per-modality norm).
        **kwargs: The other arguments of mmseg's ``MixVisionTransformer`` (``in_channels``,
            ``num_stages``, ``patch_sizes``, ``strides``, ``out_indices``, ``pretrained``,
            ``init_cfg``).

    Forward: ``forward(x_a, x_b)``, each (B, in_channels, H, W); returns ``(outs_a, outs_b)``,
    two lists with one (B, C_i, H / s_i, W / s_i) map per index in ``out_indices`` (strides s_i
    4, 8, 16, 32 with the default patch embeddings).

    Initialisation: mmseg's MiT scheme (or ``init_cfg``): Linear trunc. normal 0.02, LayerNorm
    1/0, Conv normal sqrt(2 / fan_out), which is the official ``_init_weights``; like the
    official code it also reaches the fusion blocks' Linear layers, while their noise embeddings
    keep N(0, 1) and their MHA ``in_proj_weight`` the Xavier init.

    Raises:
        ValueError: If ``arch`` is unknown, or ``arch`` is None and one of the four shape
            arguments is missing; from ``forward``, if x_a and x_b differ in shape.
    """

    arch_settings: Dict[str, dict] = {
        'b0': dict(embed_dims=32, num_layers=[2, 2, 2, 2]),
        'b1': dict(embed_dims=64, num_layers=[2, 2, 2, 2]),
        'b2': dict(embed_dims=64, num_layers=[3, 4, 6, 3]),
        'b3': dict(embed_dims=64, num_layers=[3, 4, 18, 3]),
        'b4': dict(embed_dims=64, num_layers=[3, 8, 27, 3]),
        'b5': dict(embed_dims=64, num_layers=[3, 6, 40, 3]),
    }
    _common_settings = dict(num_heads=[1, 2, 5, 8], sr_ratios=[8, 4, 2, 1])

    def __init__(self,
                 arch: Optional[str] = None,
                 embed_dims: Optional[int] = None,
                 num_layers: Optional[Sequence[int]] = None,
                 num_heads: Optional[Sequence[int]] = None,
                 sr_ratios: Optional[Sequence[int]] = None,
                 fusion_cfg: Optional[dict] = dict(num_heads=8),
                 mlp_ratio: int = 4,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 act_cfg: dict = dict(type='GELU'),
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 with_cp: bool = False,
                 **kwargs):
        shape = dict(embed_dims=embed_dims, num_layers=num_layers, num_heads=num_heads,
                     sr_ratios=sr_ratios)
        if arch is not None:
            if arch not in self.arch_settings:
                raise ValueError(f'unknown MiT arch {arch!r}; choose one of '
                                 f'{sorted(self.arch_settings)}')
            preset = {**self._common_settings, **self.arch_settings[arch]}
            shape = {k: preset[k] if v is None else v for k, v in shape.items()}
        missing = [k for k, v in shape.items() if v is None]
        if missing:
            raise ValueError(f'give arch or all of embed_dims, num_layers, num_heads, '
                             f'sr_ratios; missing {missing}')
        self.arch = arch
        # The stock single-modality MiT, then its layers made two-modality in place.
        super().__init__(
            **shape, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate, act_cfg=act_cfg,
            norm_cfg=norm_cfg, with_cp=with_cp, **kwargs)
        depths = shape['num_layers']
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()  # as the stock MiT
        cur = 0
        for i, (patch_embed, blocks, _) in enumerate(self.layers):
            dims = shape['embed_dims'] * shape['num_heads'][i]
            patch_embed.norm = PerModalityNorm(norm_cfg, dims)
            for j in range(len(blocks)):
                blocks[j] = GeminiTransformerEncoderLayer(
                    embed_dims=dims,
                    num_heads=shape['num_heads'][i],
                    feedforward_channels=mlp_ratio * dims,
                    drop_rate=drop_rate,
                    attn_drop_rate=attn_drop_rate,
                    drop_path_rate=dpr[cur + j],
                    qkv_bias=qkv_bias,
                    act_cfg=act_cfg,
                    norm_cfg=norm_cfg,
                    with_cp=with_cp,
                    sr_ratio=shape['sr_ratios'][i],
                    fusion_cfg=fusion_cfg)
            self.layers[i][2] = PerModalityNorm(norm_cfg, dims)
            cur += len(blocks)

    def forward(self, x_a: Tensor, x_b: Tensor) -> Tuple[List[Tensor], List[Tensor]]:
        """Encode both modalities; see the class docstring for shapes."""
        if x_a.shape != x_b.shape:
            raise ValueError(f'{self.__class__.__name__}: the two modalities must have the '
                             f'same shape, got {tuple(x_a.shape)} and {tuple(x_b.shape)}')
        outs = super().forward(torch.cat([x_a, x_b], dim=0))
        pairs = [out.chunk(NUM_MODALITIES, dim=0) for out in outs]
        return [a for a, _ in pairs], [b for _, b in pairs]
