"""LFM, the Latent Cross-Modal Fusion module of SSLFusion: voxel and image features fused through
a small graph of latent nodes, cost linear in the number of voxels.

Paper: B. Ding, J. Xie, J. Nie, J. Cao, "SSLFusion: Scale & Space Aligned Latent Fusion Model for
Multimodal 3D Object Detection", arXiv 2504.05170, Sec. "Latent Cross-Modal Fusion Module" (non-
local cross-modal context in a latent space instead of QKV attention, complexity O(N c n) for N
voxels, c channels, n latent nodes) and its comparison with QKV cross-attention. Official code:
github.com/TLDBN/SSLFsion, ``pcdet/models/backbones_2d/fuser/SSLFusion.py`` (``CrossLatentGNN``
and ``SSLFusion.forward``), read to settle the details and not copied. The latent graph is
LatentGNN's (S. Zhang, X. He, S. Yan, "LatentGNN: Learning Efficient Non-local Relations for
Visual Recognition", ICML 2019; github.com/latentgnn/LatentGNN-V1-PyTorch,
``lib/latentgnn_v1.py``), made cross-modal.

Shape shorthand: M voxels of the whole batch (M = sum of M_b over the B samples), C channels of
both inputs, K latent nodes per modality (``num_latents``, default 128 as the official code),
C_out output channels. Per sample b, with X_m (M_b, C) the voxels of modality m in {pts, img}:

``mode='latent'`` (the LFM)::

    S_m   = shared_mlp(X_m)                     Linear C->256, ReLU, Linear 256->C, norm (shared;
                                                one call on [X_pts; X_img], see below)
    Phi_m = relu(norm(Linear_m^v2l(S_m)))       (M_b, K) visible-to-latent adjacency,
            L2-normalised over the M_b voxels (each latent node's weights)
    Psi_m = relu(norm(Linear_m^l2v(S_m)))       (M_b, K) latent-to-visible adjacency,
            L2-normalised over the K nodes (each voxel's weights)
    Z_m   = Phi_m^T S_m                         (K, C) latent nodes of modality m
    Z     = [Z_pts; Z_img]                      (2K, C), the cross-modal latent graph
    A     = softmax_rows(norm_C(Z) norm_C(Z)^T) (2K, 2K) dense affinity (cosine similarities)
    Z'    = A Z;  G_m = Psi_m Z'_m + S_m        (M_b, C) back to the voxels, residual
    a_m   = sigmoid(MLP_m(S_pts + S_img))       (M_b, C) modality gates, MLP C->128->C, no bias
    Y     = (a_pts * G_pts + X_pts) + (a_img * G_img + X_img)
    out   = fuse(relu(Y))                       Linear C->C_out, norm, ReLU

Cost: O(M K C) for the adjacencies and the two projections, O(K^2 C) per sample for the latent
graph; memory O(M (K + C)). ``mode='attention'`` (the paper's comparison) replaces the latent
graph by full multi-head QKV cross-attention of every voxel's ``S_pts`` over the ``S_img`` of
all voxels of its sample, ``G_pts = S_pts + MHA(S_pts, S_img, S_img)``, ``G_img = S_img``
(O(M_b^2 C) time; ``F.scaled_dot_product_attention``, which uses a memory-efficient kernel where
torch has one). ``mode='concat'``: ``Y = Linear_2C->C([X_pts, X_img])``, then the same output
path (the plain baseline).

Batches: voxels pool into / attend to only their own sample's nodes / tokens. In training mode
all B samples are processed together, padded to (B, max M_b, .) (no Python loop over voxels or
samples). In eval mode 'latent' runs in chunks of ``chunk_size`` voxels (a Python loop over the
B samples and over chunks of voxels, never over single voxels): pass 1 pools every chunk into
the sample's latent nodes (sums of ``Phi^T S`` and of the squared column norms of ``Phi``, so the
normalisation over all voxels of the sample is exact), pass 2 maps the mixed nodes back chunk by
chunk. Same function (tested, gradients included); it bounds the per-voxel temporaries (shared
MLP hidden layer, four (M, K) adjacencies), which on CPU keeps them in cache and makes the time
grow linearly with M (tools/analysis_tools/benchmark_latent_fusion.py). Training-mode BatchNorm
needs the statistics of all voxels, so training is not chunked.

The shared MLP runs once on the two modalities stacked, (2M, C), not once per modality. Its
BatchNorm is shared too: with one call per modality, training normalises each modality by its own
batch statistics while the running estimates (updated by both calls) track a mixture of the two,
so in eval mode neither modality is normalised as in training. Measured on the KITTI sample
overfit: the image voxels' variance at the next layer was 50-200x the running estimate, growing
to 1e4-1e6x at the fusion outputs, and nearly every box was lost in eval mode (found with the
BatchNorm layers in training mode, where the same checkpoint detected them). One call normalises
both modalities with one set of statistics in training, the set the running estimates track.

Fixes relative to the official ``CrossLatentGNN`` (each changes what the module computes):

- Adjacencies were laid out with ``.view(-1, N)`` on the (N, K) output of the linear layers,
  a reshape where a transpose was meant: voxel-to-node weights were scrambled across voxels and
  nodes. Likewise ``.view(N, -1)`` on the (C, N) result of the latent-to-visible product. Here
  transposes (``bmm`` with the right operand order).
- The image modality's latent-to-visible adjacency was computed from the LiDAR features
  (``modal2_l2v(modal1_feats)``); here from the image features.
- The latent-to-visible adjacency was normalised over the voxels; LatentGNN normalises it over
  the latent nodes (``dim=1`` of its (B, K, HW) tensor, an index that shifted when the batch axis
  was dropped). Here over the nodes, so each voxel receives a unit-norm mix of nodes.
- All voxels of the whole batch shared one set of latent nodes, so samples leaked into each
  other; here every sample has its own 2 x K nodes (outputs of one sample do not depend on
  another's voxels, except through training-mode BatchNorm statistics, as in any BN network).
- ``torch.autograd.set_detect_anomaly(True)`` at import (slows every backward pass of the
  process), ``torch.cuda.empty_cache()`` per call and hard-coded ``.cuda()`` are not carried over.

Other differences: the voxel-side input transform (official ``voxel_transform``) and the SAM
sampling are not part of this block (see ``space_alignment.py`` and the SAF wrapper); ``fuse_out``
and ``activate_out`` keep the official defaults (True). Initialisation: PyTorch defaults, as the
official code.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

__all__ = ['LatentCrossModalFusion', 'pack_by_batch']

MODES = ('latent', 'attention', 'concat')


def pack_by_batch(batch_idx: Tensor, batch_size: int) -> Tuple[Tensor, Tensor]:
    """Slot of every voxel in a (B, max M_b) padded layout (voxel order kept within a sample).

    Args:
        batch_idx (Tensor): (M,) int in [0, B), any order.
        batch_size (int): B.

    Returns:
        tuple[Tensor, Tensor]: ``pos`` (M,) int64, the voxel's row within its sample, and
        ``counts`` (B,) int64, M_b. ``padded[batch_idx, pos] = x`` packs, ``padded[batch_idx,
        pos]`` unpacks.
    """
    batch_idx = batch_idx.long()
    counts = torch.bincount(batch_idx, minlength=batch_size)
    order = torch.argsort(batch_idx, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    pos = torch.empty_like(batch_idx)
    pos[order] = torch.arange(batch_idx.numel(), device=batch_idx.device) - starts[batch_idx[order]]
    return pos, counts


def _pad(x: Tensor, batch_idx: Tensor, pos: Tensor, batch_size: int, length: int) -> Tensor:
    """(M, D) -> (B, L, D), zeros in the padding; a view when B == 1 (``pos`` is then 0..M-1)."""
    if batch_size == 1:
        return x.unsqueeze(0)
    out = x.new_zeros(batch_size, length, x.shape[-1])
    out[batch_idx, pos] = x
    return out


def _unpad(y: Tensor, batch_idx: Tensor, pos: Tensor) -> Tensor:
    """(B, L, D) -> (M, D), inverse of :func:`_pad`."""
    return y[0] if y.shape[0] == 1 else y[batch_idx, pos]


def _mlp_norm_act(in_channels: int, out_channels: int, norm_cfg: Optional[dict]) -> nn.Sequential:
    """Linear, norm (if ``norm_cfg``), ReLU."""
    layers = [nn.Linear(in_channels, out_channels)]
    if norm_cfg is not None:
        layers.append(build_norm_layer(norm_cfg, out_channels)[1])
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


@MODELS.register_module()
class LatentCrossModalFusion(BaseModule):
    """LFM: fuse voxel features with their image features through per-sample latent nodes.

    Args:
        channels (int): C, channels of both inputs (official ``mid_channels``).
        out_channels (int, optional): C_out of ``fuse_out``. Default: C.
        mode (str): 'latent' (LFM), 'attention' (full QKV cross-attention, voxel -> image
            tokens of the same sample) or 'concat' (concatenation + linear). Default 'latent'.
        num_latents (int): K latent nodes per modality and sample. Default 128 (official).
        shared_channels (int): hidden width of the shared MLP. Default 256 (official).
        gate_channels (int): hidden width of the modality gates. Default 128 (official).
        num_heads (int): heads of ``mode='attention'``; must divide C. Default 8.
        norm_cfg (dict, optional): norm after the linear layers (mmcv ``build_norm_layer``).
            Default ``dict(type='BN1d', eps=1e-3, momentum=0.01)`` (official); None for none.
        activate_out (bool): ReLU on the merged features. Default True (official).
        fuse_out (bool): Linear C->C_out + norm + ReLU at the end. Default True (official).
        chunk_size (int, optional): in eval mode, 'latent' runs in chunks of this many voxels
            (same result; per-voxel temporaries bounded by the chunk). None: never. Training
            mode always runs unchunked (BatchNorm needs the statistics of all voxels).
            Default 8192.
        init_cfg (dict, optional): mmengine initialisation config.

    Raises:
        ValueError: on an unknown ``mode`` or ``num_heads`` not dividing C.
    """

    def __init__(self,
                 channels: int,
                 out_channels: Optional[int] = None,
                 mode: str = 'latent',
                 num_latents: int = 128,
                 shared_channels: int = 256,
                 gate_channels: int = 128,
                 num_heads: int = 8,
                 norm_cfg: Optional[dict] = dict(type='BN1d', eps=1e-3, momentum=0.01),
                 activate_out: bool = True,
                 fuse_out: bool = True,
                 chunk_size: Optional[int] = 8192,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
        out_channels = channels if out_channels is None else out_channels
        if not fuse_out and out_channels != channels:
            raise ValueError(f'out_channels ({out_channels}) != channels ({channels}) needs '
                             'fuse_out=True')
        self.channels, self.out_channels, self.mode = channels, out_channels, mode
        self.num_latents = num_latents
        self.activate_out = activate_out
        self.chunk_size = chunk_size

        if mode == 'concat':
            self.concat_proj = nn.Linear(2 * channels, channels)
        else:
            shared = [nn.Linear(channels, shared_channels), nn.ReLU(inplace=True),
                      nn.Linear(shared_channels, channels)]
            if norm_cfg is not None:
                shared.append(build_norm_layer(norm_cfg, channels)[1])
            self.shared_mlp = nn.Sequential(*shared)
            self.gate_pts = self._gate(channels, gate_channels)
            self.gate_img = self._gate(channels, gate_channels)
        if mode == 'latent':
            # v2l / l2v adjacency projections, one pair per modality (official CrossLatentGNN)
            self.pts_v2l = _mlp_norm_act(channels, num_latents, norm_cfg)
            self.img_v2l = _mlp_norm_act(channels, num_latents, norm_cfg)
            self.pts_l2v = _mlp_norm_act(channels, num_latents, norm_cfg)
            self.img_l2v = _mlp_norm_act(channels, num_latents, norm_cfg)
        elif mode == 'attention':
            if channels % num_heads:
                raise ValueError(f'num_heads ({num_heads}) must divide channels ({channels})')
            self.num_heads = num_heads
            self.q_proj = nn.Linear(channels, channels)
            self.k_proj = nn.Linear(channels, channels)
            self.v_proj = nn.Linear(channels, channels)
            self.out_proj = nn.Linear(channels, channels)
        self.fuse = _mlp_norm_act(channels, out_channels, norm_cfg) if fuse_out else None

    @staticmethod
    def _gate(channels: int, hidden: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(channels, hidden, bias=False), nn.ReLU(inplace=True),
                             nn.Linear(hidden, channels, bias=False), nn.Sigmoid())

    def shared_projection(self, pts_feats: Tensor, img_feats: Tensor) -> Tuple[Tensor, Tensor]:
        """S_pts, S_img: (M, C) x 2 -> (M, C) x 2, the shared MLP in one call on both modalities
        (one set of BatchNorm statistics in training, the set its running estimates track)."""
        s = self.shared_mlp(torch.cat([pts_feats, img_feats]))
        return s[:pts_feats.shape[0]], s[pts_feats.shape[0]:]

    # -- latent graph pieces, shared by the batched and the chunked evaluation --------------------
    @staticmethod
    def _pool_to_latents(phi: Tensor, s: Tensor) -> Tuple[Tensor, Tensor]:
        """Unnormalised visible-to-latent pooling ``phi^T s`` and the squared column norms of
        ``phi``: (..., L, K), (..., L, C) -> (..., K, C), (..., K). Dividing by the column norms
        afterwards equals pooling with the column-normalised adjacency, without the (L, K) copy."""
        return phi.transpose(-1, -2) @ s, phi.square().sum(-2)

    @staticmethod
    def _mix_latents(z_raw: Tensor, sq_norm: Tensor) -> Tensor:
        """Normalise the pooled nodes (as ``F.normalize``, eps 1e-12) and run the dense latent
        graph: (..., 2K, C), (..., 2K) -> (..., 2K, C)."""
        z = z_raw / sq_norm.sqrt().clamp(min=1e-12).unsqueeze(-1)
        z_n = F.normalize(z, dim=-1)
        return torch.softmax(z_n @ z_n.transpose(-1, -2), dim=-1) @ z

    @staticmethod
    def _to_visible(psi: Tensor, z: Tensor) -> Tensor:
        """Latent-to-visible with the adjacency normalised over the nodes of each voxel:
        (..., L, K), (..., K, C) -> (..., L, C) (the norm divides the (L, C) product)."""
        return (psi @ z) / torch.linalg.vector_norm(psi, dim=-1, keepdim=True).clamp(min=1e-12)

    def latent_interaction(self, s_pts: Tensor, s_img: Tensor, batch_idx: Tensor, pos: Tensor,
                           batch_size: int, length: int) -> Tuple[Tensor, Tensor]:
        """Cross-modal latent graph: (M, C) x 2 -> G_pts, G_img (M, C), residual included."""
        k = self.num_latents

        def pad(x):
            return _pad(x, batch_idx, pos, batch_size, length)

        z_pts, n_pts = self._pool_to_latents(pad(self.pts_v2l(s_pts)), pad(s_pts))
        z_img, n_img = self._pool_to_latents(pad(self.img_v2l(s_img)), pad(s_img))
        z = self._mix_latents(torch.cat([z_pts, z_img], 1), torch.cat([n_pts, n_img], 1))
        g_pts = _unpad(self._to_visible(pad(self.pts_l2v(s_pts)), z[:, :k]), batch_idx, pos)
        g_img = _unpad(self._to_visible(pad(self.img_l2v(s_img)), z[:, k:]), batch_idx, pos)
        return g_pts + s_pts, g_img + s_img

    def _forward_latent_chunked(self, pts_feats: Tensor, img_feats: Tensor, batch_idx: Tensor,
                                batch_size: int) -> Tensor:
        """Eval-mode LFM in chunks of ``chunk_size`` voxels: the same function, with the
        per-voxel temporaries bounded by the chunk (Python loops over samples and chunks)."""
        k = self.num_latents
        counts = torch.bincount(batch_idx, minlength=batch_size).tolist()
        order = torch.argsort(batch_idx, stable=True)
        out = pts_feats.new_empty(pts_feats.shape[0], self.out_channels)
        for ids_b in order.split(counts):
            if ids_b.numel() == 0:
                continue
            chunks, z_raw, sq_norm = [], 0, 0
            for ids in ids_b.split(self.chunk_size):  # pass 1: pool into the latent nodes
                s_pts, s_img = self.shared_projection(pts_feats[ids], img_feats[ids])
                z_pts, n_pts = self._pool_to_latents(self.pts_v2l(s_pts), s_pts)
                z_img, n_img = self._pool_to_latents(self.img_v2l(s_img), s_img)
                z_raw = z_raw + torch.cat([z_pts, z_img])
                sq_norm = sq_norm + torch.cat([n_pts, n_img])
                chunks.append((ids, s_pts, s_img))
            z = self._mix_latents(z_raw, sq_norm)
            for ids, s_pts, s_img in chunks:  # pass 2: back to the voxels, merge
                g_pts = s_pts + self._to_visible(self.pts_l2v(s_pts), z[:k])
                g_img = s_img + self._to_visible(self.img_l2v(s_img), z[k:])
                out[ids] = self._merge(pts_feats[ids], img_feats[ids], s_pts, s_img, g_pts,
                                       g_img)
        return out

    def attention_interaction(self, s_pts: Tensor, s_img: Tensor, batch_idx: Tensor, pos: Tensor,
                              counts: Tensor, length: int) -> Tuple[Tensor, Tensor]:
        """Full QKV cross-attention, voxel queries over the image tokens of their sample."""
        b, h, c = counts.numel(), self.num_heads, self.channels
        q = _pad(self.q_proj(s_pts), batch_idx, pos, b, length)
        k = _pad(self.k_proj(s_img), batch_idx, pos, b, length)
        v = _pad(self.v_proj(s_img), batch_idx, pos, b, length)
        q, k, v = (t.view(b, length, h, c // h).transpose(1, 2) for t in (q, k, v))
        mask = None
        if bool((counts < length).any()):  # padded keys of the shorter samples
            valid = torch.arange(length, device=counts.device) < counts[:, None]  # (B, L)
            mask = valid[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, h, L, d)
        out = _unpad(out.transpose(1, 2).reshape(b, length, c), batch_idx, pos)
        return s_pts + self.out_proj(out), s_img

    # -- forward ----------------------------------------------------------------------------------
    def forward(self, pts_feats: Tensor, img_feats: Tensor, batch_idx: Tensor,
                batch_size: Optional[int] = None) -> Tensor:
        """Fuse every voxel's LiDAR feature with its (SAM-sampled) image feature.

        Args:
            pts_feats (Tensor): (M, C) voxel features.
            img_feats (Tensor): (M, C) image features of the same voxels (zeros where the voxel
                is not seen by the camera, as SAM returns them).
            batch_idx (Tensor): (M,) int in [0, B), any order.
            batch_size (int, optional): B; default ``batch_idx.max() + 1``.

        Returns:
            Tensor: (M, C_out) fused voxel features.

        Raises:
            ValueError: on shape mismatches.
        """
        if pts_feats.dim() != 2 or pts_feats.shape != img_feats.shape or \
                pts_feats.shape[1] != self.channels:
            raise ValueError(f'pts_feats and img_feats must both be (M, {self.channels}), got '
                             f'{tuple(pts_feats.shape)} and {tuple(img_feats.shape)}')
        if batch_idx.shape != pts_feats.shape[:1]:
            raise ValueError(f'batch_idx must be (M,) = ({pts_feats.shape[0]},), got '
                             f'{tuple(batch_idx.shape)}')
        if self.mode == 'concat':
            fused = self.concat_proj(torch.cat([pts_feats, img_feats], dim=-1))
            return self._activate_and_fuse(fused)
        batch_idx = batch_idx.long()
        if batch_size is None:
            batch_size = int(batch_idx.max()) + 1 if batch_idx.numel() else 1
        if self.mode == 'latent' and not self.training and self.chunk_size and \
                pts_feats.shape[0] > self.chunk_size:
            return self._forward_latent_chunked(pts_feats, img_feats, batch_idx, batch_size)
        pos, counts = pack_by_batch(batch_idx, batch_size)
        length = int(counts.max()) if counts.numel() else 0
        s_pts, s_img = self.shared_projection(pts_feats, img_feats)
        if self.mode == 'latent':
            g_pts, g_img = self.latent_interaction(s_pts, s_img, batch_idx, pos, batch_size,
                                                   length)
        else:
            g_pts, g_img = self.attention_interaction(s_pts, s_img, batch_idx, pos, counts,
                                                      length)
        return self._merge(pts_feats, img_feats, s_pts, s_img, g_pts, g_img)

    def _merge(self, pts_feats: Tensor, img_feats: Tensor, s_pts: Tensor, s_img: Tensor,
               g_pts: Tensor, g_img: Tensor) -> Tensor:
        """Gated residual merge of the two branches, then the output path: (., C) -> (., C_out)."""
        summed = s_pts + s_img
        fused = (g_pts * self.gate_pts(summed) + pts_feats) + \
            (g_img * self.gate_img(summed) + img_feats)
        return self._activate_and_fuse(fused)

    def _activate_and_fuse(self, fused: Tensor) -> Tensor:
        if self.activate_out:
            fused = F.relu(fused)
        if self.fuse is not None:
            fused = self.fuse(fused)
        return fused
