"""Tests of SS2D and the VSS block (VMamba v0): scan paths, cross-scan / cross-merge, causality of
each direction, initialisation, registry, and a run on a real LLVIP infrared image."""
import importlib
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

from mmfusion.models.layers import SS2D, VSSBlock, cross_merge, cross_scan
from mmfusion.ops.selective_scan import selective_scan_reference

ss2d_module = importlib.import_module('mmfusion.models.layers.ss2d')

pytestmark = pytest.mark.default_scope('mmdet')


def _rel_err(a, b):
    """Largest absolute difference relative to the largest magnitude of ``b``."""
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def _forward_and_grads(layer, x):
    x = x.clone().requires_grad_(True)
    out = layer(x)
    weight = torch.linspace(-1, 1, out.numel()).view_as(out)  # a fixed, non-trivial loss
    (out * weight).sum().backward()
    grads = {name: p.grad.clone() for name, p in layer.named_parameters()}
    grads['input'] = x.grad.clone()
    layer.zero_grad()
    return out.detach(), grads


def test_ss2d_torch_scan_matches_reference(monkeypatch):
    torch.manual_seed(0)
    layer = SS2D(16)  # C=16: d_inner 32, R 1, N 16
    x = torch.randn(2, 5, 7, 16)  # H != W catches transpose bugs
    out, grads = _forward_and_grads(layer, x)
    assert out.shape == x.shape
    monkeypatch.setattr(ss2d_module, 'selective_scan', selective_scan_reference)
    ref, ref_grads = _forward_and_grads(layer, x)
    assert _rel_err(out, ref) < 1e-5
    for name, grad in ref_grads.items():
        assert grads[name].abs().max() > 0, name
        assert _rel_err(grads[name], grad) < 1e-5, name


def test_cross_scan_index_maps():
    """Every direction of cross_scan, against explicit loops over the pixels."""
    height, width = 3, 4
    x = torch.randn(2, 5, height, width)
    xs = cross_scan(x)
    length = height * width
    assert xs.shape == (2, 4, 5, length)
    row_major = [(h, w) for h in range(height) for w in range(width)]
    col_major = [(h, w) for w in range(width) for h in range(height)]
    orders = [row_major, col_major, row_major[::-1], col_major[::-1]]
    for k, order in enumerate(orders):
        expected = torch.stack([x[:, :, h, w] for h, w in order], dim=-1)
        assert torch.equal(xs[:, k], expected), k


def test_cross_merge_inverts_cross_scan(monkeypatch):
    """With an identity scan, every direction returns each pixel to its place: merge(scan(x))
    is 4 x (and reduce=False gives x four times); the same holds inside SS2D."""
    height, width = 5, 7
    x = torch.randn(2, 3, height, width)
    xs = cross_scan(x)
    flat = x.flatten(2)
    assert torch.equal(cross_merge(xs, height, width), 4 * flat)
    per_direction = cross_merge(xs, height, width, reduce=False)
    for k in range(4):
        assert torch.equal(per_direction[:, k], flat)

    # Inside the layer: with the scan replaced by "return u", SS2D is pointwise after the conv.
    monkeypatch.setattr(ss2d_module, 'selective_scan', lambda u, *args, **kwargs: u)
    torch.manual_seed(0)
    layer = SS2D(8)
    inp = torch.randn(1, height, width, 8)
    xz = layer.in_proj(inp)
    xc, z = xz.chunk(2, dim=-1)
    xc = layer.act(layer.conv2d(xc.permute(0, 3, 1, 2)))
    expected = layer.out_proj(layer.out_norm(4 * xc.permute(0, 2, 3, 1)) * F.silu(z))
    torch.testing.assert_close(layer(inp), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('pixel', [(2, 3), (0, 0), (4, 6)])
def test_each_direction_scans_in_its_order(pixel):
    """Perturb one pixel of the scan input: in direction k exactly the pixels at or after it in
    k's order change (causal scan), nothing before it."""
    torch.manual_seed(0)
    height, width = 5, 7
    layer = SS2D(8, d_state=4)
    with torch.no_grad():  # small steps, so the perturbation survives the whole sequence in fp32
        layer.dt_projs_weight.zero_()
        layer.dt_projs_bias.fill_(math.log(math.expm1(0.01)))
    x = torch.randn(1, layer.d_inner, height, width)
    x2 = x.clone()
    x2[:, :, pixel[0], pixel[1]] += 1.0
    with torch.no_grad():
        ys = [cross_merge(layer.scan(cross_scan(t)), height, width, reduce=False) for t in (x, x2)]
    changed = (ys[0] - ys[1]).abs().amax(dim=2).view(4, height, width) > 0  # (K, H, W)
    hh, ww = torch.meshgrid(torch.arange(height), torch.arange(width), indexing='ij')
    row_rank, col_rank = hh * width + ww, ww * height + hh
    length = height * width
    ranks = [row_rank, col_rank, length - 1 - row_rank, length - 1 - col_rank]
    for k, rank in enumerate(ranks):
        expected = rank >= rank[pixel]
        assert torch.equal(changed[k], expected), k


def test_ss2d_init():
    torch.manual_seed(0)
    layer = SS2D(48, d_state=16)
    k, d_inner = 4, 96
    assert layer.d_inner == d_inner and layer.dt_rank == 3
    assert layer.x_proj_weight.shape == (k, 3 + 32, d_inner)
    assert layer.dt_projs_weight.shape == (k, d_inner, 3)
    A = -torch.exp(layer.A_logs)
    assert A.shape == (k * d_inner, 16)
    torch.testing.assert_close(A, -torch.arange(1., 17.).expand(k * d_inner, 16))
    assert torch.equal(layer.Ds, torch.ones(k * d_inner))
    dt = F.softplus(layer.dt_projs_bias)
    assert dt.shape == (k, d_inner)
    assert dt.min() >= 0.001 * (1 - 1e-5) and dt.max() <= 0.1 * (1 + 1e-5)
    assert dt.log().std() > 0.5  # spread over the log range, not a constant
    assert not torch.equal(dt[0], dt[1])  # drawn per direction
    bound = 3**-0.5
    w = layer.dt_projs_weight
    assert w.abs().max() <= bound and w.abs().max() > 0.5 * bound
    const = SS2D(48, dt_init='constant', dt_scale=2.0)
    torch.testing.assert_close(const.dt_projs_weight, torch.full_like(w, 2 * bound))
    with pytest.raises(ValueError):
        SS2D(16, dt_init='bad')


def test_vss_block_registry_shapes_and_grads():
    from mmdet.registry import MODELS
    torch.manual_seed(0)
    block = MODELS.build(dict(type='VSSBlock', hidden_dim=16, drop_path=0.1, d_state=8))
    assert isinstance(block, VSSBlock) and isinstance(block.self_attention, SS2D)
    assert isinstance(MODELS.build(dict(type='SS2D', d_model=16)), SS2D)
    x = torch.randn(2, 5, 7, 16, requires_grad=True)
    out = block(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    out.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().max() > 0
    for name, p in block.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # channels_first gives the same function in the other layout
    block.eval()
    cf = VSSBlock(16, d_state=8, channels_first=True)
    cf.load_state_dict(block.state_dict())
    cf.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            cf(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1), block(x), rtol=1e-5, atol=1e-6)


def test_vss_block_on_llvip_infrared(test_data_root, monkeypatch):
    cv2 = pytest.importorskip('cv2')
    path = osp.join(test_data_root, 'llvip', 'LLVIP', 'infrared', 'test', '190001.jpg')
    img = cv2.imread(path)
    assert img is not None, path
    img = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255  # (1, 3, 1024, 1280)
    img = F.interpolate(img, size=(16, 20), mode='area')
    gen = torch.Generator().manual_seed(0)
    proj = torch.randn(16, 3, 1, 1, generator=gen)  # fixed random 1x1 conv to C=16
    feat = F.conv2d(img - img.mean(), proj).permute(0, 2, 3, 1)  # (1, 16, 20, 16)
    assert feat.std() > 0
    torch.manual_seed(0)
    block = VSSBlock(16).eval()
    with torch.no_grad():
        out = block(feat)
        monkeypatch.setattr(ss2d_module, 'selective_scan', selective_scan_reference)
        ref = block(feat)
    assert out.shape == feat.shape and torch.isfinite(out).all()
    assert _rel_err(out, ref) < 1e-5
    assert (out - feat).abs().max() > 1e-3  # the SS2D branch contributes


def test_folded_scan_matches_one_scan_per_direction():
    """The single folded call (K in the channels, grouped B/C) equals K separate selective scans,
    each with its own x_proj, dt_proj, A, D and ungrouped (B, N, L) projections."""
    torch.manual_seed(0)
    layer = SS2D(16, d_state=8)
    d, n, r = layer.d_inner, layer.d_state, layer.dt_rank
    xs = cross_scan(torch.randn(2, d, 4, 6))
    with torch.no_grad():
        folded = layer.scan(xs)
        for k in range(4):
            u = xs[:, k]  # (B, d_inner, L)
            dt, Bk, Ck = F.linear(u.transpose(1, 2), layer.x_proj_weight[k]).split([r, n, n], -1)
            delta = F.linear(dt, layer.dt_projs_weight[k]).transpose(1, 2)
            chans = slice(k * d, (k + 1) * d)
            y = selective_scan_reference(u, delta, -torch.exp(layer.A_logs[chans]),
                                         Bk.transpose(1, 2), Ck.transpose(1, 2), layer.Ds[chans],
                                         delta_bias=layer.dt_projs_bias[k], delta_softplus=True)
            assert _rel_err(folded[:, k], y) < 1e-5, k
