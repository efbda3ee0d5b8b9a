"""GeminiFusion pixel-wise attention between two aligned modalities.

Paper: D. Jia, J. Guo, K. Han, H. Wu, C. Zhang, C. Xu, X. Chen, "GeminiFusion: Efficient Pixel-wise
Multimodal Fusion for Vision Transformer", ICML 2024 (arXiv 2406.01210), Sec. 3 (the GeminiFusion
module: pixel-wise intra-/inter-modal attention, relation discriminator, layer-adaptive noise).
Official code: github.com/JiaDingCN/GeminiFusion, ``Attention.forward`` in
``models/mix_transformer.py`` and ``models/swin_transformer.py`` (main branch; the DeLiVER and KITTI
branches have the same fusion code). Equation numbers were not checked against the PDF; the
semantics below follow the official code, which was read line by line.

Shape shorthand: B batch, N tokens (pixels, N = H * W), C channels (``embed_dims``), h heads,
d = C / h channels per head. ``m`` is the modality being updated, ``o`` the other one.

What one direction computes, for every token i independently (attention over two keys, so cost is
linear in N)::

    s_i   = softmax_C(MLP([x_m_i, x_o_i]))                 relation discriminator, MLP 2C -> C -> C
    q_i   = x_m_i                                          one query
    k_i   = [x_m_i + n_k,  x_m_i * s_i]                    two keys
    v_i   = [x_m_i + n_v,  x_o_i]                          two values
    y_m_i = x_m_i + MHA(q_i, k_i, v_i)                     h heads, nn.MultiheadAttention

``n_k`` and ``n_v`` are the layer-adaptive noise: learnable vectors (C,) of this layer, one per key
and per value, one set per direction. Facts of the official code this module reproduces:

- The relation score scales the *query-side token* x_m in the *second key* only; the second value is
  the other modality's token x_o, unscaled. The softmax is over channels (``dim=-1`` of (.., C)).
- The relation discriminator (``relation_judger``: Linear(2C, C), GELU, Linear(C, C), softmax) is
  one module shared by both directions; each direction feeds it ``[x_m, x_o]`` in its own order.
- Each direction has its own ``nn.MultiheadAttention`` (``cross_attn_0_to_1``,
  ``cross_attn_1_to_0``) and its own noise row (``k_noise.weight[0/1]``, ``v_noise.weight[0/1]``
  of ``nn.Embedding(2, C)``).
- Initialisation: Linear weights (discriminator, MHA output projection) truncated normal std 0.02,
  biases 0; MHA input projection as torch initialises it (Xavier uniform, bias 0); noise N(0, 1)
  (``nn.Embedding`` default: the official ``_init_weights`` leaves embeddings untouched).

Deliberate differences from the official code:

- Vectorised over the batch: the official code loops over the batch in Python and calls
  ``nn.MultiheadAttention`` with the N pixels as its batch (query length 1, key length 2); here the
  projections are batched linear layers over (B, N, C) and the two-key softmax is written as a
  sigmoid of the logit difference, so the keys and values enter only as k0 - k1 and v0 - v1 (the
  projection biases cancel; one C x C projection per token fewer). Same function (tested to 1e-5
  against that loop). Every token is independent, so on CPU the B * N tokens go through in
  chunks (``chunk_tokens``) that keep the intermediates in cache; chunking is the CPU default
  because the unchunked pass is memory-bound there (figures:
  ``tools/analysis_tools/benchmark_gemini_fusion.py``, ``docs/benchmarks/``).
- The fusion is a standalone block ``forward(x_a, x_b) -> (y_a, y_b)``. The official code runs it
  inside the backbone's self-attention, on the self-attention output before the shared output
  projection ``proj``; a backbone using this block places it there itself.
- Ablation switches of the paper's Sec. 4 ablations, not in the official code:
  ``use_relation_discriminator=False`` uses the plain pixel-wise cross-attention that the
  discriminator replaces, keys ``[x_m + n_k, x_o]`` (the other token unscaled);
  ``use_noise=False`` drops ``n_k`` and ``n_v``; ``shared_noise=True`` uses one noise vector for
  both the key and the value. ``relation_scaled_token='other'`` scales x_o instead of x_m in the
  second key (the reading "discriminator score times the other modality's token"); the default
  ``'query'`` is the official code.

Checkpoint mapping from the official module (direction 0 = ``a``, 1 = ``b``)::

    cross_attn_0_to_1.*           -> attn_a.*
    cross_attn_1_to_0.*           -> attn_b.*
    relation_judger.0.fc1/fc2.*   -> relation_discriminator.0/2.*
    k_noise.weight, v_noise.weight -> k_noise.weight, v_noise.weight
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch import Tensor, nn

__all__ = ['GeminiFusionAttention']


@MODELS.register_module()
class GeminiFusionAttention(BaseModule):
    """GeminiFusion block: pixel-wise attention of each modality over itself and the other.

    Args:
        embed_dims (int): C, channels of both modalities' tokens.
        num_heads (int): h, heads of each direction's attention; must divide C. Default 8
            (official).
        use_relation_discriminator (bool): scale the second key by the relation score. If False the
            second key is the other modality's token, unscaled. Default True.
        use_noise (bool): add the layer-adaptive noise to the first key and value. Default True.
        shared_noise (bool): one noise vector per direction for both key and value (``k_noise``),
            instead of separate ``k_noise`` and ``v_noise``. Default False (official).
        relation_scaled_token (str): ``'query'`` (official: x_m * s) or ``'other'`` (x_o * s) as the
            second key. Ignored when ``use_relation_discriminator`` is False.
        chunk_tokens (int, optional): on CPU, fuse the B * N tokens (every token is independent)
            in chunks of this many, so that the intermediates stay in cache: measured at B=8,
            N=19200, C=64 on a 2-core EPYC, 8192-token chunks take 0.28 s and 222 MiB against
            0.69 s and 684 MiB unchunked (tools/analysis_tools/benchmark_gemini_fusion.py). Same
            result to the last bit. CUDA tensors are never chunked. None disables it.
            Default 8192.
        init_cfg (dict, optional): mmengine initialisation config, on top of the official init.

    Raises:
        ValueError: if ``num_heads`` does not divide ``embed_dims`` or ``relation_scaled_token`` is
            unknown.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int = 8,
                 use_relation_discriminator: bool = True,
                 use_noise: bool = True,
                 shared_noise: bool = False,
                 relation_scaled_token: str = 'query',
                 chunk_tokens: Optional[int] = 8192,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if embed_dims <= 0 or num_heads <= 0 or embed_dims % num_heads:
            raise ValueError(f'num_heads ({num_heads}) must divide embed_dims ({embed_dims})')
        if relation_scaled_token not in ('query', 'other'):
            raise ValueError("relation_scaled_token must be 'query' or 'other', "
                             f'got {relation_scaled_token!r}')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.use_relation_discriminator = use_relation_discriminator
        self.use_noise = use_noise
        self.shared_noise = shared_noise
        self.relation_scaled_token = relation_scaled_token
        if chunk_tokens is not None and chunk_tokens <= 0:
            raise ValueError(f'chunk_tokens must be positive or None, got {chunk_tokens}')
        self.chunk_tokens = chunk_tokens

        # attn_a updates modality a (query a, second value b); attn_b the reverse.
        self.attn_a = nn.MultiheadAttention(embed_dims, num_heads, dropout=0.0)
        self.attn_b = nn.MultiheadAttention(embed_dims, num_heads, dropout=0.0)
        self.relation_discriminator = nn.Sequential(
            nn.Linear(2 * embed_dims, embed_dims), nn.GELU(),
            nn.Linear(embed_dims, embed_dims)) if use_relation_discriminator else None
        # Row 0: direction a <- b, row 1: direction b <- a.
        self.k_noise = nn.Embedding(2, embed_dims) if use_noise else None
        self.v_noise = nn.Embedding(2, embed_dims) if use_noise and not shared_noise else None
        self._official_init()

    def _official_init(self):
        """Official ``_init_weights``: Linear weights trunc. normal std 0.02, biases 0."""
        for m in self.modules():
            if isinstance(m, nn.Linear):  # includes the MHA output projections
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _fuse(self, x_m: Tensor, x_o: Tensor, attn: nn.MultiheadAttention, row: int,
              rel_m: Optional[Tensor]) -> Tensor:
        """One direction: x_m (B, N, C) attends to its two keys; returns y_m (B, N, C).

        ``rel_m`` is the relation discriminator's first layer before GELU, (B, N, C), or None.
        Two-key attention, per head: weights = softmax([l0, l1]) = [sigmoid(l0 - l1), ...] with
        l0 - l1 = q . (k0 - k1), and out = v1 + w0 * (v0 - v1); k0 - k1 and v0 - v1 are linear in
        their inputs, so the projection biases cancel and the noise enters as an input shift.
        """
        b, n, c = x_m.shape
        h, d = self.num_heads, c // self.num_heads
        w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
        b_q, _, b_v = attn.in_proj_bias.chunk(3)

        if self.use_relation_discriminator:
            score = self.relation_discriminator[2](F.gelu(rel_m)).softmax(dim=-1)
            k1_in = (x_m if self.relation_scaled_token == 'query' else x_o) * score
        else:
            k1_in = x_o
        if self.use_noise:
            n_k = self.k_noise.weight[row]
            n_v = (self.k_noise if self.shared_noise else self.v_noise).weight[row]
            dk_in = (x_m - k1_in) + n_k
            dv_in = (x_m - x_o) + n_v
        else:
            dk_in = x_m - k1_in
            dv_in = x_m - x_o

        scale = d ** -0.5
        q = F.linear(x_m, w_q * scale, b_q * scale).view(b, n, h, d)
        dk = F.linear(dk_in, w_k).view(b, n, h, d)  # k0 - k1
        dv = F.linear(dv_in, w_v).view(b, n, h, d)  # v0 - v1
        v1 = F.linear(x_o, w_v, b_v).view(b, n, h, d)
        w0 = torch.sigmoid((q * dk).sum(-1, keepdim=True))  # (B, N, h, 1), weight of key 0
        out = torch.addcmul(v1, w0, dv).view(b, n, c)
        return x_m + attn.out_proj(out)

    def _to_tokens(self, x: Tensor, name: str) -> Tuple[Tensor, Optional[Tuple[int, int]]]:
        """(B, N, C) -> itself, (B, C, H, W) -> (B, H*W, C) plus (H, W); validates C."""
        if not isinstance(x, Tensor) or x.dim() not in (3, 4):
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f'{name} must be a (B, N, C) or (B, C, H, W) tensor, got {shape}')
        channels = x.shape[-1] if x.dim() == 3 else x.shape[1]
        if channels != self.embed_dims:
            raise ValueError(f'{name} has {channels} channels, expected embed_dims='
                             f'{self.embed_dims} (shape {tuple(x.shape)})')
        if x.dim() == 3:
            return x, None
        return x.flatten(2).transpose(1, 2), (x.shape[2], x.shape[3])

    def forward(self, x_a: Tensor, x_b: Tensor) -> Tuple[Tensor, Tensor]:
        """Fuse two aligned modalities in both directions.

        Args:
            x_a: Tokens of modality a (e.g. RGB), (B, N, C), or a feature map (B, C, H, W).
            x_b: Tokens of modality b (e.g. depth), same shape and layout as ``x_a``.

        Returns:
            tuple[Tensor, Tensor]: (y_a, y_b), each of the input shape and layout; y_a is x_a
            updated from x_b, y_b is x_b updated from x_a.

        Raises:
            ValueError: naming ``x_a`` or ``x_b`` if it is not a 3-D/4-D tensor with C channels, or
                naming ``x_b`` if its shape differs from ``x_a``'s.
        """
        tok_a, hw = self._to_tokens(x_a, 'x_a')
        tok_b, _ = self._to_tokens(x_b, 'x_b')
        if x_b.shape != x_a.shape:
            raise ValueError(f'x_b must have the shape of x_a {tuple(x_a.shape)}, '
                             f'got {tuple(x_b.shape)}')
        b, n, c = tok_a.shape
        flat_a, flat_b = tok_a.reshape(1, b * n, c), tok_b.reshape(1, b * n, c)
        if self.chunk_tokens is not None and not flat_a.is_cuda and b * n > self.chunk_tokens:
            pieces = [
                self._fuse_tokens(part_a, part_b) for part_a, part_b in zip(
                    flat_a.split(self.chunk_tokens, 1), flat_b.split(self.chunk_tokens, 1))
            ]
            y_a = torch.cat([y for y, _ in pieces], 1)
            y_b = torch.cat([y for _, y in pieces], 1)
        else:
            y_a, y_b = self._fuse_tokens(flat_a, flat_b)
        y_a, y_b = y_a.view(b, n, c), y_b.view(b, n, c)
        if hw is not None:
            y_a = y_a.transpose(1, 2).reshape(b, c, *hw)
            y_b = y_b.transpose(1, 2).reshape(b, c, *hw)
        return y_a, y_b

    def _fuse_tokens(self, tok_a: Tensor, tok_b: Tensor) -> Tuple[Tensor, Tensor]:
        """Both directions on tokens (1, M, C) of both modalities; returns (y_a, y_b)."""
        rel_a = rel_b = None
        if self.use_relation_discriminator:
            # First layer on [x_m, x_o] = x_m W_left + x_o W_right + bias; the products of both
            # modalities serve both directions.
            fc1 = self.relation_discriminator[0]
            c = self.embed_dims
            w_stacked = torch.cat(fc1.weight.chunk(2, dim=1), dim=0)  # (2C, C): [W_left; W_right]
            proj_a, proj_b = F.linear(tok_a, w_stacked), F.linear(tok_b, w_stacked)
            rel_a = proj_a[..., :c] + proj_b[..., c:] + fc1.bias
            rel_b = proj_b[..., :c] + proj_a[..., c:] + fc1.bias
        y_a = self._fuse(tok_a, tok_b, self.attn_a, 0, rel_a)
        y_b = self._fuse(tok_b, tok_a, self.attn_b, 1, rel_b)
        return y_a, y_b

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, '
                f'use_relation_discriminator={self.use_relation_discriminator}, '
                f'use_noise={self.use_noise}, shared_noise={self.shared_noise}, '
                f'relation_scaled_token={self.relation_scaled_token!r}, '
                f'chunk_tokens={self.chunk_tokens}')
