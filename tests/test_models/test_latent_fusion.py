"""LFM (SSLFusion's latent cross-modal fusion): against a per-sample reference written from the
formulas, per-sample independence, permutation equivariance, gradients, the three modes, and a
batch of two real KITTI frames."""
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmfusion.models.fusion.latent_fusion import LatentCrossModalFusion, pack_by_batch

pytestmark = pytest.mark.default_scope('mmdet3d')

C = 16
KITTI = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'kitti', 'training')


def make_batch(counts, seed=0, channels=C):
    """Features of sum(counts) voxels with their sample index, samples interleaved (unsorted)."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.cat([torch.full((n, ), b) for b, n in enumerate(counts)])
    idx = idx[torch.randperm(len(idx), generator=gen)]
    pts = torch.randn(len(idx), channels, generator=gen)
    img = torch.randn(len(idx), channels, generator=gen)
    img[:len(idx) // 5] = 0  # voxels outside the image: SAM gives zeros
    return pts, img, idx


def build(mode, seed=0, **kwargs):
    torch.manual_seed(seed)
    kwargs.setdefault('num_latents', 8)
    kwargs.setdefault('num_heads', 4)
    module = LatentCrossModalFusion(C, out_channels=12, mode=mode, **kwargs)
    # non-trivial BatchNorm running statistics for eval mode
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return module


def reference(module, pts, img, idx):
    """Per-sample loop written from the formulas of the module docstring (eval mode)."""
    s_pts, s_img = module.shared_mlp(pts), module.shared_mlp(img)
    g_pts, g_img = s_pts.clone(), s_img.clone()
    for b in idx.unique():
        sel = idx == b
        sp, si = s_pts[sel], s_img[sel]
        if module.mode == 'latent':
            k = module.num_latents
            phi_p = module.pts_v2l(s_pts)[sel]
            phi_i = module.img_v2l(s_img)[sel]
            phi_p = phi_p / phi_p.norm(dim=0, keepdim=True).clamp(min=1e-12)
            phi_i = phi_i / phi_i.norm(dim=0, keepdim=True).clamp(min=1e-12)
            psi_p = module.pts_l2v(s_pts)[sel]
            psi_i = module.img_l2v(s_img)[sel]  # the image's own adjacency (fixed bug)
            psi_p = psi_p / psi_p.norm(dim=1, keepdim=True).clamp(min=1e-12)
            psi_i = psi_i / psi_i.norm(dim=1, keepdim=True).clamp(min=1e-12)
            z = torch.cat([phi_p.T @ sp, phi_i.T @ si])
            zn = z / z.norm(dim=1, keepdim=True).clamp(min=1e-12)
            z = torch.softmax(zn @ zn.T, dim=1) @ z
            g_pts[sel] = sp + psi_p @ z[:k]
            g_img[sel] = si + psi_i @ z[k:]
        else:
            h = module.num_heads
            q = module.q_proj(sp).view(-1, h, C // h).transpose(0, 1)
            kk = module.k_proj(si).view(-1, h, C // h).transpose(0, 1)
            v = module.v_proj(si).view(-1, h, C // h).transpose(0, 1)
            att = torch.softmax(q @ kk.transpose(1, 2) / (C // h)**0.5, dim=-1) @ v
            g_pts[sel] = sp + module.out_proj(att.transpose(0, 1).reshape(-1, C))
    summed = s_pts + s_img
    fused = g_pts * module.gate_pts(summed) + pts + g_img * module.gate_img(summed) + img
    return module.fuse(F.relu(fused))


@pytest.mark.parametrize('mode,chunk_size', [('latent', None), ('latent', 16),
                                             ('attention', None)])
def test_matches_per_sample_reference(mode, chunk_size):
    pts, img, idx = make_batch([37, 21, 50])
    module = build(mode, chunk_size=chunk_size).eval()
    with torch.no_grad():
        out = module(pts, img, idx)
        ref = reference(module, pts, img, idx)
    assert out.shape == (len(idx), 12)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_concat_mode():
    pts, img, idx = make_batch([5, 7])
    module = build('concat').eval()
    assert not hasattr(module, 'shared_mlp') and not hasattr(module, 'pts_v2l')
    with torch.no_grad():
        ref = module.fuse(F.relu(module.concat_proj(torch.cat([pts, img], 1))))
        torch.testing.assert_close(module(pts, img, idx), ref)


@pytest.mark.parametrize('mode', ['latent', 'attention', 'concat'])
@pytest.mark.parametrize('training', [False, True])
def test_samples_are_independent(mode, training):
    """Sample 1's output does not change when sample 0's voxels (values and number) change. In
    training mode BatchNorm statistics couple samples, so that case runs without norm layers."""
    pts, img, idx = make_batch([30, 25], seed=1)
    module = build(mode, norm_cfg=None if training else dict(type='BN1d')).train(training)
    with torch.no_grad():
        out = module(pts, img, idx)
        keep = idx == 1
        pts2, img2, idx2 = make_batch([40], seed=2)  # a different sample 0, more voxels
        out2 = module(torch.cat([pts2, pts[keep]]), torch.cat([img2, img[keep]]),
                      torch.cat([idx2, idx[keep]]))
    torch.testing.assert_close(out2[len(idx2):], out[keep], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out2[:25], out[idx == 0][:25], atol=1e-3)


@pytest.mark.parametrize('mode,chunk_size', [('latent', None), ('latent', 16),
                                             ('attention', None), ('concat', None)])
def test_permutation_equivariance(mode, chunk_size):
    pts, img, idx = make_batch([40, 33], seed=3)
    module = build(mode, chunk_size=chunk_size).eval()
    perm = torch.randperm(len(idx), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = module(pts, img, idx)
        out_perm = module(pts[perm], img[perm], idx[perm])
    torch.testing.assert_close(out_perm, out[perm], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('mode', ['latent', 'attention', 'concat'])
def test_gradients(mode):
    pts, img, idx = make_batch([30, 45], seed=5)
    pts.requires_grad_(True)
    img.requires_grad_(True)
    module = build(mode).train()
    out = module(pts, img, idx)
    (out * torch.randn_like(out)).sum().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert pts.grad.abs().sum() > 0 and img.grad.abs().sum() > 0


def test_chunked_eval_matches_batched_with_gradients():
    """Eval-mode chunking (the default above ``chunk_size`` voxels) is the same function,
    gradients included; samples empty in the batch are skipped."""
    pts, img, idx = make_batch([70, 0, 45], seed=7)
    outs, grads = [], []
    for chunk_size in (None, 16):
        module = build('latent', chunk_size=chunk_size).eval()
        x = pts.clone().requires_grad_(True)
        out = module(x, img, idx, batch_size=3)
        out.square().sum().backward()
        outs.append(out)
        grads.append([x.grad] + [p.grad for p in module.parameters()])
    torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=1e-5)
    for g_chunked, g_batched in zip(grads[1], grads[0]):
        torch.testing.assert_close(g_chunked, g_batched, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('mode,chunk_size', [('latent', None), ('latent', 64),
                                             ('attention', None)])
def test_eval_matches_training_with_the_batch_statistics(mode, chunk_size):
    """With BatchNorm momentum 1 the running estimates are the statistics of the last training
    batch, so eval mode on that batch must give the training output. This fails when a norm
    layer sees the two modalities in separate calls (its running estimates then track only the
    last call's modality), which is why the shared MLP runs once on both."""
    pts, img, idx = make_batch([300], seed=8)
    img = 4 * img + 3  # image features distributed unlike the LiDAR features
    module = build(mode, chunk_size=chunk_size, norm_cfg=dict(type='BN1d', momentum=1.0))
    with torch.no_grad():
        trained = module.train()(pts, img, idx)
        evaluated = module.eval()(pts, img, idx)
    # eval uses the unbiased variance, training the biased one: a factor n / (n - 1)
    torch.testing.assert_close(evaluated, trained, atol=2e-2, rtol=2e-2)


def test_latent_interaction_mixes_modalities():
    """The LiDAR branch sees the image: changing image features changes the fused LiDAR path
    G_pts (through the cross-modal latent graph), not only the image residual."""
    pts, img, idx = make_batch([60], seed=6)
    module = build('latent').eval()
    with torch.no_grad():
        s_pts, s_img = module.shared_projection(pts, img)
        pos, counts = pack_by_batch(idx, 1)
        g1, _ = module.latent_interaction(s_pts, s_img, idx, pos, 1, 60)
        g2, _ = module.latent_interaction(s_pts, module.shared_projection(pts, img.flip(1))[1],
                                          idx, pos, 1, 60)
    assert (g1 - g2).abs().max() > 1e-3


def test_pack_by_batch():
    idx = torch.tensor([1, 0, 1, 2, 0, 1])
    pos, counts = pack_by_batch(idx, 4)
    assert counts.tolist() == [2, 3, 1, 0]
    assert pos.tolist() == [0, 0, 1, 0, 1, 2]


def test_real_kitti_frames_batch():
    """Two real frames of different sizes: point (x, y, z, r) and pixel colours as features."""
    import mmcv

    from mmfusion.models.fusion.space_alignment import SpaceAlignment
    from tests.test_models.test_space_alignment import read_calib
    feats_pts, feats_img, idx = [], [], []
    for b, name in enumerate(['000000', '000003']):
        pts = np.fromfile(osp.join(KITTI, 'velodyne', name + '.bin'), dtype=np.float32)
        pts = torch.from_numpy(pts.reshape(-1, 4)[::20 + 7 * b].copy())
        p2, r0, tr = read_calib(osp.join(KITTI, 'calib', name + '.txt'))
        image = mmcv.imread(osp.join(KITTI, 'image_2', name + '.png'))
        meta = dict(lidar2img=p2 @ r0 @ tr, img_shape=image.shape[:2])
        image = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        rgb, valid = SpaceAlignment(with_depth_embedding=False)(
            pts[:, :3], torch.zeros(len(pts), dtype=torch.long), image, [meta], stride=1)
        assert valid.float().mean() > 0.9
        feats_pts.append(pts)
        feats_img.append(torch.cat([rgb, valid[:, None].float()], 1))
        idx.append(torch.full((len(pts), ), b))
    torch.manual_seed(0)
    lift = torch.nn.Linear(4, C)
    with torch.no_grad():
        pts, img = lift(torch.cat(feats_pts)), lift(torch.cat(feats_img))
    idx = torch.cat(idx)
    assert (idx == 0).sum() != (idx == 1).sum()
    module = LatentCrossModalFusion(C, num_latents=16).eval()
    with torch.no_grad():
        out = module(pts, img, idx, batch_size=2)
        one = idx == 1
        alone = module(pts[one], img[one], torch.zeros(int(one.sum()), dtype=torch.long))
    assert out.shape == (len(idx), C) and torch.isfinite(out).all()
    torch.testing.assert_close(out[idx == 1], alone, atol=1e-5, rtol=1e-5)


def test_bad_input_raises():
    with pytest.raises(ValueError, match='mode'):
        LatentCrossModalFusion(C, mode='qkv')
    with pytest.raises(ValueError, match='num_heads'):
        LatentCrossModalFusion(C, mode='attention', num_heads=5)
    module = LatentCrossModalFusion(C)
    with pytest.raises(ValueError, match='img_feats'):
        module(torch.zeros(4, C), torch.zeros(3, C), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match='batch_idx'):
        module(torch.zeros(4, C), torch.zeros(4, C), torch.zeros(3, dtype=torch.long))


def test_registered():
    from mmdet3d.registry import MODELS

    import mmfusion.det3d  # noqa: F401
    module = MODELS.build(dict(type='LatentCrossModalFusion', channels=C, mode='attention',
                               num_heads=4))
    assert isinstance(module, LatentCrossModalFusion)
    assert MODELS.get('SpaceAlignment') is not None
