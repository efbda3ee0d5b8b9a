"""Tests of ``GeminiFusionAttention`` against a loop written like the official GeminiFusion code.

The reference loops over the batch in Python and calls ``nn.MultiheadAttention`` (sequence-first)
with query length 1 and the two keys/values of every pixel, the pixels being its batch, exactly as
``Attention.forward`` of github.com/JiaDingCN/GeminiFusion (main, ``models/mix_transformer.py``).
"""
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from mmfusion.models.fusion.gemini_fusion import GeminiFusionAttention

pytestmark = pytest.mark.default_scope('mmseg')


ABLATIONS = [
    dict(),
    dict(use_relation_discriminator=False),
    dict(use_noise=False),
    dict(shared_noise=True),
    dict(use_relation_discriminator=False, use_noise=False),
    dict(relation_scaled_token='other'),
]


def _copy_mha(src):
    """A fresh sequence-first ``nn.MultiheadAttention`` (as official) holding ``src``'s weights."""
    ref = nn.MultiheadAttention(src.embed_dim, src.num_heads, dropout=0.0)
    ref.load_state_dict(src.state_dict())
    return ref


def reference_fusion(module, x_a, x_b):
    """Per-sample, per-pixel GeminiFusion: one ``nn.MultiheadAttention`` call per sample and
    direction, the pixels being its batch (query length 1, 2 keys).

    Args:
        module (GeminiFusionAttention): its weights are copied into fresh attention modules.
        x_a, x_b: (B, N, C) tokens.

    Returns:
        tuple[Tensor, Tensor]: (y_a, y_b), (B, N, C).
    """
    attns = (_copy_mha(module.attn_a), _copy_mha(module.attn_b))
    outs = ([], [])
    for bs in range(x_a.shape[0]):
        for row, (x_m, x_o) in enumerate(((x_a[bs], x_b[bs]), (x_b[bs], x_a[bs]))):
            q = x_m.unsqueeze(0)  # (1, N, C): length 1, the N pixels are the MHA batch
            if module.use_noise:
                noise_k = module.k_noise.weight[row]
                noise_v = (module.k_noise if module.shared_noise else module.v_noise).weight[row]
            else:
                noise_k = noise_v = torch.zeros_like(x_m[0])
            if module.use_relation_discriminator:
                judger_input = torch.cat([x_m, x_o], dim=-1).unsqueeze(0)
                score = torch.softmax(module.relation_discriminator(judger_input), dim=-1)
                scaled = x_m if module.relation_scaled_token == 'query' else x_o
                second_key = scaled.unsqueeze(0) * score
            else:
                second_key = x_o.unsqueeze(0)
            k = torch.cat([q + noise_k, second_key], dim=0)  # (2, N, C)
            v = torch.cat([q + noise_v, x_o.unsqueeze(0)], dim=0)
            outs[row].append(x_m + attns[row](q, k, v)[0].squeeze(0))
    return torch.stack(outs[0]), torch.stack(outs[1])


def _randomise(module, seed=0):
    """Non-trivial weights everywhere (the official init zeroes biases)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return module


@pytest.mark.parametrize('cfg', ABLATIONS, ids=lambda c: ','.join(f'{k}={v}' for k, v in c.items())
                         or 'default')
def test_matches_reference_random(cfg):
    torch.manual_seed(0)
    module = _randomise(GeminiFusionAttention(32, num_heads=8, **cfg))
    x_a, x_b = torch.randn(3, 50, 32), torch.randn(3, 50, 32)
    y_a, y_b = module(x_a, x_b)
    r_a, r_b = reference_fusion(module, x_a, x_b)
    assert y_a.shape == y_b.shape == (3, 50, 32)
    torch.testing.assert_close(y_a, r_a, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y_b, r_b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('cfg', ABLATIONS, ids=lambda c: ','.join(f'{k}={v}' for k, v in c.items())
                         or 'default')
def test_gradients_reach_every_parameter(cfg):
    torch.manual_seed(1)
    module = _randomise(GeminiFusionAttention(16, num_heads=4, **cfg), seed=1)
    x_a = torch.randn(2, 10, 16, requires_grad=True)
    x_b = torch.randn(2, 10, 16, requires_grad=True)
    y_a, y_b = module(x_a, x_b)
    (y_a.square().sum() + y_b.square().sum()).backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x_a.grad.abs().sum() > 0 and x_b.grad.abs().sum() > 0


def test_parameters_follow_ablation_switches():
    names = {n for n, _ in GeminiFusionAttention(16).named_parameters()}
    assert {'k_noise.weight', 'v_noise.weight', 'relation_discriminator.0.weight',
            'attn_a.in_proj_weight', 'attn_b.out_proj.weight'} <= names
    shared = {n for n, _ in GeminiFusionAttention(16, shared_noise=True).named_parameters()}
    assert 'k_noise.weight' in shared and 'v_noise.weight' not in shared
    plain = {n for n, _ in GeminiFusionAttention(
        16, use_noise=False, use_relation_discriminator=False).named_parameters()}
    assert not any(n.startswith(('k_noise', 'v_noise', 'relation')) for n in plain)


def test_registered_in_mmseg():
    from mmseg.registry import MODELS
    module = MODELS.build(dict(type='GeminiFusionAttention', embed_dims=16, num_heads=2))
    assert isinstance(module, GeminiFusionAttention)


def _nyudv2_tokens(root, channels=64, stride=8):
    """RGB and depth of NYUDv2 frame 000433 through fixed random patch embeddings (stride 8).

    Returns:
        tuple[Tensor, Tensor]: (B=1, C, H/8, W/8) feature maps of RGB and depth.
    """
    rgb = np.asarray(Image.open(osp.join(root, 'rgb', '000433.png')).convert('RGB'))
    depth_raw = np.asarray(Image.open(osp.join(root, 'depth', '000433.png')))
    assert depth_raw.dtype == np.uint16
    depth_m = depth_raw.astype(np.float32) / 5000.0  # metres, 0 = no depth
    rgb_t = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    rgb_t = (rgb_t - 0.5) / 0.25
    depth_t = torch.from_numpy(depth_m)[None, None] / 5.0  # about 0.3-1.2
    gen = torch.Generator().manual_seed(0)
    w_rgb = torch.randn(channels, 3, stride, stride, generator=gen) / (3 * stride * stride) ** 0.5
    w_depth = torch.randn(channels, 1, stride, stride, generator=gen) / stride
    return F.conv2d(rgb_t, w_rgb, stride=stride), F.conv2d(depth_t, w_depth, stride=stride)


def test_real_nyudv2_sample(test_data_root):
    f_rgb, f_depth = _nyudv2_tokens(osp.join(test_data_root, 'nyudv2'))
    assert f_rgb.shape == f_depth.shape == (1, 64, 60, 80)
    torch.manual_seed(0)
    module = GeminiFusionAttention(64).eval()
    with torch.no_grad():
        y_rgb, y_depth = module(f_rgb, f_depth)
        assert y_rgb.shape == y_depth.shape == (1, 64, 60, 80)
        assert torch.isfinite(y_rgb).all() and torch.isfinite(y_depth).all()
        assert not torch.equal(y_rgb, f_rgb) and not torch.equal(y_depth, f_depth)
        tok_rgb = f_rgb.flatten(2).transpose(1, 2)
        tok_depth = f_depth.flatten(2).transpose(1, 2)
        r_rgb, r_depth = reference_fusion(module, tok_rgb, tok_depth)
    torch.testing.assert_close(y_rgb.flatten(2).transpose(1, 2), r_rgb, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y_depth.flatten(2).transpose(1, 2), r_depth, rtol=1e-5, atol=1e-5)


def test_feature_map_layout_round_trip():
    torch.manual_seed(2)
    module = _randomise(GeminiFusionAttention(16, num_heads=4), seed=2)
    x_a, x_b = torch.randn(2, 16, 5, 7), torch.randn(2, 16, 5, 7)
    y_a, y_b = module(x_a, x_b)
    assert y_a.shape == y_b.shape == (2, 16, 5, 7)
    t_a, t_b = module(x_a.flatten(2).transpose(1, 2), x_b.flatten(2).transpose(1, 2))
    torch.testing.assert_close(y_a, t_a.transpose(1, 2).reshape(2, 16, 5, 7))
    torch.testing.assert_close(y_b, t_b.transpose(1, 2).reshape(2, 16, 5, 7))


@pytest.mark.parametrize('x_a, x_b, name', [
    (torch.zeros(2, 16), torch.zeros(2, 4, 16), 'x_a'),
    (torch.zeros(2, 4, 16), torch.zeros(1, 2, 4, 16, 1), 'x_b'),
    (torch.zeros(2, 4, 15), torch.zeros(2, 4, 16), 'x_a'),
    (torch.zeros(2, 4, 16), torch.zeros(2, 5, 16), 'x_b'),
    (torch.zeros(2, 16, 3, 3), torch.zeros(2, 8, 3, 3), 'x_b'),
    (torch.zeros(2, 16, 3, 3), torch.zeros(2, 9, 16), 'x_b'),
    ('not a tensor', torch.zeros(2, 4, 16), 'x_a'),
])
def test_bad_shapes_raise(x_a, x_b, name):
    module = GeminiFusionAttention(16, num_heads=4)
    with pytest.raises(ValueError, match=name):
        module(x_a, x_b)


@pytest.mark.parametrize('kwargs', [dict(embed_dims=10, num_heads=4),
                                    dict(embed_dims=16, relation_scaled_token='key')])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        GeminiFusionAttention(**kwargs)


def test_cpu_chunking_equals_one_pass():
    """``chunk_tokens`` splits the B * N independent tokens; result and gradients unchanged."""
    torch.manual_seed(0)
    chunked = GeminiFusionAttention(16, num_heads=4, chunk_tokens=7)
    whole = GeminiFusionAttention(16, num_heads=4, chunk_tokens=None)
    whole.load_state_dict(chunked.state_dict())
    x_a = torch.randn(3, 16, 5, 6, requires_grad=True)  # 90 tokens: 13 chunks, the last short
    x_b = torch.randn(3, 16, 5, 6, requires_grad=True)
    outs = []
    for module in (chunked, whole):
        y_a, y_b = module(x_a, x_b)
        grads = torch.autograd.grad((y_a * y_a).sum() + y_b.sum(), [x_a, x_b])
        outs.append((y_a, y_b, *grads))
    for got, want in zip(*outs):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match='chunk_tokens'):
        GeminiFusionAttention(16, num_heads=4, chunk_tokens=0)
