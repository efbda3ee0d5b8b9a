"""Tests of Fusion-Mamba's fusion blocks (SSCS, DSSF, FMB) on features of a real LLVIP pair:
shapes and gradients, the exact channel swap, chaining of the DSSF blocks, the dual gating
equation, the ablation switches, shared scan parameters, and the PyTorch scan against the
step-by-step reference scan."""
import importlib
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmfusion.models.fusion.dual_state_space_fusion import (SSM_PARAMS, DualStateSpaceFusion,
                                                            DualStateSpaceFusionBlock)
from mmfusion.models.fusion.fusion_mamba_block import FusionMambaBlock
from mmfusion.models.fusion.state_space_channel_swapping import (StateSpaceChannelSwapping,
                                                                 swap_channel_quarters)
from mmfusion.ops.selective_scan import selective_scan_reference

ss2d_module = importlib.import_module('mmfusion.models.layers.ss2d')

pytestmark = pytest.mark.default_scope('mmdet')

LLVIP_PAIR = ('visible', 'infrared')


def llvip_features(size=(8, 10), channels=16, name='190001'):
    """Features of the bundled LLVIP pair ``name``: each image (1024 x 1280) normalised,
    area-downsampled to ``size`` and passed through a fixed random 3x3 conv stem (one per modality)
    to ``channels``.

    Returns:
        tuple[Tensor, Tensor]: RGB and infrared features, (1, channels, *size) each.
    """
    cv2 = pytest.importorskip('cv2')
    root = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'llvip', 'LLVIP')
    gen = torch.Generator().manual_seed(0)
    feats = []
    for modality in LLVIP_PAIR:
        path = osp.join(root, modality, 'test', f'{name}.jpg')
        img = cv2.imread(path)
        assert img is not None, path
        img = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
        img = (img - img.mean((2, 3), keepdim=True)) / img.std((2, 3), keepdim=True)
        img = F.interpolate(img, size=size, mode='area')
        stem = torch.randn(channels, 3, 3, 3, generator=gen) / 3
        feats.append(F.conv2d(img, stem, padding=1))
    assert feats[0].std() > 0.1 and feats[1].std() > 0.1
    assert not torch.allclose(feats[0], feats[1])  # two different images
    return tuple(feats)


def _rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def _trained_like(module, seed=0, scale=0.05):
    """Perturb every parameter a little, so no output depends on an init coincidence (e.g. the
    zero-free but symmetric LayerNorm init)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
    return module


def test_fmb_registry_shapes_and_gradients():
    from mmdet.registry import MODELS
    x_rgb, x_ir = llvip_features()
    torch.manual_seed(0)
    fmb = MODELS.build(dict(type='FusionMambaBlock', in_channels=16, num_dssf_blocks=2,
                            d_state=8))
    assert isinstance(fmb, FusionMambaBlock) and len(fmb.dssf.blocks) == 2
    assert FusionMambaBlock(16).dssf.blocks.__len__() == 8  # paper/official default N
    x_rgb.requires_grad_(True)
    x_ir.requires_grad_(True)
    y_rgb, y_ir = fmb(x_rgb, x_ir)
    assert y_rgb.shape == x_rgb.shape and y_ir.shape == x_ir.shape
    assert torch.isfinite(y_rgb).all() and torch.isfinite(y_ir).all()
    # cross-modal: each output depends on the other modality's input
    g_ir, = torch.autograd.grad(y_rgb.square().sum(), x_ir, retain_graph=True)
    g_rgb, = torch.autograd.grad(y_ir.square().sum(), x_rgb, retain_graph=True)
    assert g_ir.abs().max() > 0 and g_rgb.abs().max() > 0
    (y_rgb.square().mean() + y_ir.square().mean()).backward()
    assert x_rgb.grad.abs().max() > 0 and x_ir.grad.abs().max() > 0
    for name, p in fmb.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name
    with pytest.raises(ValueError, match='FusionMambaBlock'):
        fmb(x_rgb, x_ir[:, :, :-1])
    with pytest.raises(ValueError, match='divisible by 4'):
        FusionMambaBlock(18)


def test_sscs_swaps_channel_quarters_exactly():
    x_rgb, x_ir = llvip_features(channels=16)
    sscs = StateSpaceChannelSwapping(16, d_state=4)
    sscs.blocks_rgb = nn.ModuleList([nn.Identity()])  # isolate the channel swapping
    sscs.blocks_ir = nn.ModuleList([nn.Identity()])
    t_rgb, t_ir = sscs(x_rgb, x_ir)
    quarter = 16 // 4
    for c in range(16):
        swapped = (c // quarter) in (1, 3)  # 2nd and 4th quarters come from the other stream
        assert torch.equal(t_rgb[:, c], (x_ir if swapped else x_rgb)[:, c]), c
        assert torch.equal(t_ir[:, c], (x_rgb if swapped else x_ir)[:, c]), c
    # channels-last gives the same swap; the pair of swaps is an involution
    a, b = swap_channel_quarters(x_rgb.permute(0, 2, 3, 1), x_ir.permute(0, 2, 3, 1), dim=-1)
    assert torch.equal(a.permute(0, 3, 1, 2), t_rgb) and torch.equal(b.permute(0, 3, 1, 2), t_ir)
    back = swap_channel_quarters(t_rgb, t_ir)
    assert torch.equal(back[0], x_rgb) and torch.equal(back[1], x_ir)
    with pytest.raises(ValueError, match='divisible by 4'):
        swap_channel_quarters(x_rgb[:, :14], x_ir[:, :14])


def test_sscs_vss_blocks_per_stream():
    x_rgb, x_ir = llvip_features(channels=16)
    torch.manual_seed(0)
    sscs = StateSpaceChannelSwapping(16, d_state=4).eval()
    assert sscs.blocks_rgb[0] is not sscs.blocks_ir[0]
    with torch.no_grad():
        t_rgb, t_ir = swap_channel_quarters(x_rgb, x_ir)
        vss = [blocks[0] for blocks in (sscs.blocks_rgb, sscs.blocks_ir)]
        expected = [block(t.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
                    for block, t in zip(vss, (t_rgb, t_ir))]
        out = sscs(x_rgb, x_ir)
    for o, e in zip(out, expected):
        torch.testing.assert_close(o, e, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(out[0], t_rgb)  # the VSS block contributes


def test_dssf_blocks_chain():
    x_rgb, x_ir = llvip_features()
    torch.manual_seed(0)
    dssf = _trained_like(DualStateSpaceFusion(16, num_blocks=3, d_state=8)).eval()
    with torch.no_grad():
        out = dssf(x_rgb, x_ir)
        # equals applying the blocks one after the other on the previous output
        a, b = x_rgb.permute(0, 2, 3, 1), x_ir.permute(0, 2, 3, 1)
        for block in dssf.blocks:
            a, b = block(a, b)
        torch.testing.assert_close(out[0], a.permute(0, 3, 1, 2), rtol=0, atol=0)
        torch.testing.assert_close(out[1], b.permute(0, 3, 1, 2), rtol=0, atol=0)
        # the official loop (every block fed the same input, the last output kept) differs
        a0, b0 = x_rgb.permute(0, 2, 3, 1), x_ir.permute(0, 2, 3, 1)
        unchained = dssf.blocks[-1](a0, b0)
        assert (out[0] - unchained[0].permute(0, 3, 1, 2)).abs().max() > 1e-3
        # perturbing any block, the first included, changes the output
        for k, block in enumerate(dssf.blocks):
            saved = block.ss2d_rgb.out_proj.weight.clone()
            block.ss2d_rgb.out_proj.weight.mul_(1.5)
            changed = dssf(x_rgb, x_ir)
            block.ss2d_rgb.out_proj.weight.copy_(saved)
            assert (changed[0] - out[0]).abs().max() > 1e-4, k
            if k < len(dssf.blocks) - 1:  # reaches IR through the next block's gating
                assert (changed[1] - out[1]).abs().max() > 1e-4, k


@pytest.mark.parametrize('single_branch', [False, True])
def test_dssf_gating_equation(single_branch):
    """One block against the paper's equations written out from the block's pieces:
    y'_R = y_R z_R + y_IR z_R and y'_IR = y_IR z_IR + y_R z_IR (single branch: y_IR z_IR)."""
    x_rgb, x_ir = llvip_features()
    torch.manual_seed(0)
    block = _trained_like(DualStateSpaceFusionBlock(16, single_branch=single_branch,
                                                    d_state=8)).eval()
    a, b = x_rgb.permute(0, 2, 3, 1), x_ir.permute(0, 2, 3, 1)
    with torch.no_grad():
        xs_r, z_r = block._enter(block.ss2d_rgb, block.norm_rgb(a))
        xs_i, z_i = block._enter(block.ss2d_ir, block.norm_ir(b))
        # both streams scanned by the shared (RGB) scan parameters, separately
        y_r = block._leave(block.ss2d_rgb, block.ss2d_rgb.scan(xs_r), a.shape, a.dtype)
        y_i = block._leave(block.ss2d_ir, block.ss2d_rgb.scan(xs_i), b.shape, b.dtype)
        mix_r = y_r * z_r + y_i * z_r
        mix_i = y_i * z_i if single_branch else y_i * z_i + y_r * z_i
        exp_r = a + block.ss2d_rgb.out_proj(mix_r)
        exp_i = b + block.ss2d_ir.out_proj(mix_i)
        out_r, out_i = block(a, b)
        torch.testing.assert_close(out_r, exp_r, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out_i, exp_i, rtol=1e-5, atol=1e-5)
        # the official infrared gating (the already-mixed RGB result gated again) differs
        official_i = b + block.ss2d_ir.out_proj(mix_r * z_i + y_i * z_i)
        assert (out_i - official_i).abs().max() > 1e-4


def test_single_branch_is_one_direction():
    """single_branch: the IR stream of DSSF never sees the RGB input; the RGB stream sees IR."""
    x_rgb, x_ir = llvip_features()
    torch.manual_seed(0)
    dssf = DualStateSpaceFusion(16, num_blocks=2, single_branch=True, d_state=8)
    x_rgb.requires_grad_(True)
    x_ir.requires_grad_(True)
    y_rgb, y_ir = dssf(x_rgb, x_ir)
    g_ir_from_rgb, = torch.autograd.grad(y_ir.sum(), x_rgb, retain_graph=True,
                                         allow_unused=True)
    assert g_ir_from_rgb is None or g_ir_from_rgb.abs().max() == 0
    g_rgb_from_ir, = torch.autograd.grad(y_rgb.sum(), x_ir)
    assert g_rgb_from_ir.abs().max() > 0
    # in the FMB, SSCS still mixes the streams, and the flag reaches every DSSF block
    fmb = FusionMambaBlock(16, num_dssf_blocks=2, single_branch=True, d_state=8)
    assert all(block.single_branch for block in fmb.dssf.blocks)


def test_ablation_switches():
    x_rgb, x_ir = llvip_features()
    torch.manual_seed(0)
    full = FusionMambaBlock(16, num_dssf_blocks=2, d_state=8).eval()
    no_sscs = FusionMambaBlock(16, num_dssf_blocks=2, d_state=8, use_sscs=False).eval()
    no_dssf = FusionMambaBlock(16, num_dssf_blocks=2, d_state=8, use_dssf=False).eval()
    neither = FusionMambaBlock(16, use_sscs=False, use_dssf=False)
    assert no_sscs.sscs is None and no_dssf.dssf is None
    assert len(list(neither.parameters())) == 0
    no_sscs.dssf.load_state_dict(full.dssf.state_dict())
    no_dssf.sscs.load_state_dict(full.sscs.state_dict())
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(full) == count(no_sscs) + count(no_dssf)
    with torch.no_grad():
        y_full = full(x_rgb, x_ir)
        s = full.sscs.forward(x_rgb.permute(0, 2, 3, 1), x_ir.permute(0, 2, 3, 1))
        expected_full = full.dssf(*s)
        d = full.dssf(x_rgb.permute(0, 2, 3, 1), x_ir.permute(0, 2, 3, 1))
        for out, inp, res in zip(y_full, (x_rgb, x_ir), expected_full):
            torch.testing.assert_close(out, inp + res.permute(0, 3, 1, 2))
        for out, inp, res in zip(no_sscs(x_rgb, x_ir), (x_rgb, x_ir), d):
            torch.testing.assert_close(out, inp + res.permute(0, 3, 1, 2))
        for out, inp, res in zip(no_dssf(x_rgb, x_ir), (x_rgb, x_ir), s):
            torch.testing.assert_close(out, inp + res.permute(0, 3, 1, 2))
        y_none = neither(x_rgb, x_ir)
    assert y_none[0] is x_rgb and y_none[1] is x_ir
    assert not torch.allclose(y_full[0], no_sscs(x_rgb, x_ir)[0])


def test_shared_scan_parameters():
    """share_ssm: one set of scan parameters for both streams (the infrared copies removed), the
    same function as separate parameters that are equal to the RGB ones."""
    x_rgb, x_ir = llvip_features()
    torch.manual_seed(0)
    shared = _trained_like(DualStateSpaceFusion(16, num_blocks=2, d_state=8)).eval()
    separate = DualStateSpaceFusion(16, num_blocks=2, d_state=8, share_ssm=False).eval()
    for block in shared.blocks:
        for name in SSM_PARAMS:
            assert not hasattr(block.ss2d_ir, name), name
    state = shared.state_dict()
    for k in range(2):
        for name in SSM_PARAMS:
            state[f'blocks.{k}.ss2d_ir.{name}'] = state[f'blocks.{k}.ss2d_rgb.{name}']
    separate.load_state_dict(state)
    with torch.no_grad():
        for a, b in zip(shared(x_rgb, x_ir), separate(x_rgb, x_ir)):
            assert _rel_err(a, b) < 1e-5
        separate.blocks[0].ss2d_ir.A_logs.add_(0.5)  # now the IR scan differs
        assert (separate(x_rgb, x_ir)[1] - shared(x_rgb, x_ir)[1]).abs().max() > 1e-5


def test_fmb_torch_scan_matches_reference_scan(monkeypatch):
    x_rgb, x_ir = llvip_features(size=(6, 9))
    torch.manual_seed(0)
    fmb = _trained_like(FusionMambaBlock(16, num_dssf_blocks=2, d_state=8))

    def run():
        a, b = x_rgb.clone().requires_grad_(True), x_ir.clone().requires_grad_(True)
        out = fmb(a, b)
        weight = torch.linspace(-1, 1, out[0].numel()).view_as(out[0])
        ((out[0] - out[1]) * weight).sum().backward()
        grads = [a.grad, b.grad] + [p.grad.clone() for p in fmb.parameters()]
        fmb.zero_grad()
        return [o.detach() for o in out], grads

    out, grads = run()
    monkeypatch.setattr(ss2d_module, 'selective_scan', selective_scan_reference)
    ref, ref_grads = run()
    for o, r in zip(out, ref):
        assert _rel_err(o, r) < 1e-5
    for g, r in zip(grads, ref_grads):
        assert _rel_err(g, r) < 1e-4
