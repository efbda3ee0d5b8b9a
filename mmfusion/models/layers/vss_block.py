"""VSS block of VMamba v0, the visual state-space block of Fusion-Mamba's backbone.

Papers: Y. Liu et al., "VMamba: Visual State Space Model", arXiv 2401.10166, Sec. 4 (VSS block,
Fig. 3, the v0 design without an MLP branch); W. Dong et al., "Fusion-Mamba for Cross-modality
Object Detection", arXiv 2404.09146, Sec. 3. Official code: ``VSSBlock`` in ``models/common.py``
of github.com/EhanDong/Fusion-Mamba (VMamba's v0 block).

Shape shorthand: B batch, H, W height and width, C channels (``hidden_dim``).

Computation::

    out = x + DropPath(SS2D(LayerNorm(x)))          LayerNorm eps 1e-6, over C (channels-last)

Differences from the official code: DropPath is mmcv's (same stochastic depth as timm's, which the
official code imports; timm is unavailable here); ``channels_first=True`` (not in the official code)
accepts and returns (B, C, H, W). Parameter names (``ln_1``, ``self_attention``) are the official
ones, so official block weights load as is.
"""
from typing import Optional

from mmcv.cnn.bricks.drop import DropPath
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch import Tensor, nn

from .ss2d import SS2D

__all__ = ['VSSBlock']


@MODELS.register_module()
class VSSBlock(BaseModule):
    """Residual VSS block: ``x + DropPath(SS2D(LayerNorm(x)))`` (VMamba v0).

    Args:
        hidden_dim (int): Channels C.
        drop_path (float): Stochastic depth rate. Defaults to 0.
        attn_drop_rate (float): Dropout on the SS2D output. Defaults to 0.
        d_state (int): State size N of the SS2D. Defaults to 16.
        norm_eps (float): LayerNorm epsilon. Defaults to 1e-6 (official).
        channels_first (bool): Input and output as (B, C, H, W) instead of (B, H, W, C).
            Defaults to False.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
        **ss2d_kwargs: Further arguments of :class:`SS2D` (``d_conv``, ``expand``,
            ``dt_rank``, ...).
    """

    def __init__(self,
                 hidden_dim: int,
                 drop_path: float = 0.,
                 attn_drop_rate: float = 0.,
                 d_state: int = 16,
                 norm_eps: float = 1e-6,
                 channels_first: bool = False,
                 init_cfg: Optional[dict] = None,
                 **ss2d_kwargs):
        super().__init__(init_cfg=init_cfg)
        self.channels_first = channels_first
        self.ln_1 = nn.LayerNorm(hidden_dim, eps=norm_eps)
        self.self_attention = SS2D(
            d_model=hidden_dim, d_state=d_state, dropout=attn_drop_rate, **ss2d_kwargs)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Args:
            x (Tensor): (B, H, W, C), or (B, C, H, W) with ``channels_first``.

        Returns:
            Tensor: Same shape and layout as ``x``.
        """
        if self.channels_first:
            x = x.permute(0, 2, 3, 1)
        out = x + self.drop_path(self.self_attention(self.ln_1(x)))
        return out.permute(0, 3, 1, 2) if self.channels_first else out
