"""tools/model_converters/geminifusion_official_to_mmfusion.py and the official-head option.

A checkpoint in the official GeminiFusion layout (``{'segmenter': DDP state_dict}`` of a
narrow one-layer-per-stage MiT, random values) is converted for the MiT-B3 official-head config
(shrunk to the same widths), loaded strictly, and the three outputs (RGB, depth, ensemble
logits, (B, K, H/4, W/4)) are compared with a reference forward written here from the official
equations (``OverlapPatchEmbed``, ``Attention`` with its per-sample cross-attention loop,
``Block``, ``Mlp``, ``MixVisionTransformer.forward_features``, ``SegFormerHead``, ``WeTr``) on
the official names, on the real NYUDv2 sample. Both run in float64; tolerance 1e-9 relative to
the largest logit.
"""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

from mmfusion.utils.checkpoint_conversion import run_cli
from tests.test_tools.official_layouts import geminifusion_official_state
from tests.utils import PYTHON, REPO_ROOT, load_tool, run_tool

pytestmark = pytest.mark.default_scope('mmseg')

TOOL = 'tools/model_converters/geminifusion_official_to_mmfusion.py'
CONFIG_DIR = osp.join(REPO_ROOT, 'projects', 'GeminiFusion', 'configs')
OFFICIAL_HEAD = {arch: osp.join(CONFIG_DIR, f'geminifusion_mit-{arch}-official-head_3xb2-40k_'
                                'nyudv2-rgbd-480x640.py') for arch in ('b3', 'b5')}
PLAIN_B3 = osp.join(CONFIG_DIR, 'geminifusion_mit-b3_3xb2-40k_nyudv2-rgbd-480x640.py')
DIMS = (16, 32, 80, 128)
SHRUNK = {'model.backbone.embed_dims': 16, 'model.backbone.num_layers': [1, 1, 1, 1],
          'model.decode_head.in_channels': list(DIMS), 'model.decode_head.channels': 32,
          'model.decode_head.norm_cfg.type': 'BN'}
SHRINK = [f'{k}={v}'.replace(' ', '') for k, v in SHRUNK.items()]  # as --cfg-options
HEADS = (1, 2, 5, 8)
SR = (8, 4, 2, 1)


@pytest.fixture(scope='module')
def tool():
    return load_tool(TOOL, 'geminifusion_official_to_mmfusion')


# ------------------------------------------------------------------------------------------------
# reference forward on the official names (``module.`` removed), from the official equations
# ------------------------------------------------------------------------------------------------


def ln(sd, p, x, eps=1e-6):
    return F.layer_norm(x, x.shape[-1:], sd[p + 'weight'], sd[p + 'bias'], eps)


def lin(sd, p, x):
    return F.linear(x, sd[p + 'weight'], sd.get(p + 'bias'))


def mha(sd, p, q, k, v, heads=8):
    """``nn.MultiheadAttention(dim, 8, batch_first=False)(q, k, v)[0]``, (L, N, C) inputs."""
    return F.multi_head_attention_forward(
        q, k, v, q.shape[-1], heads, sd[p + 'in_proj_weight'], sd[p + 'in_proj_bias'], None,
        None, False, 0., sd[p + 'out_proj.weight'], sd[p + 'out_proj.bias'],
        training=False, need_weights=False)[0]


def attention(sd, p, x, H, W, num_heads, sr):
    B, N, C = x[0].shape
    q = [lin(sd, p + 'q.module.', x_).reshape(B, N, num_heads, C // num_heads).permute(0, 2, 1, 3)
         for x_ in x]
    if sr > 1:
        x = [x_.permute(0, 2, 1).reshape(B, C, H, W) for x_ in x]
        x = [F.conv2d(x_, sd[p + 'sr.module.weight'], sd[p + 'sr.module.bias'], stride=sr)
             for x_ in x]
        x = [x_.reshape(B, C, -1).permute(0, 2, 1) for x_ in x]
        x = [ln(sd, f'{p}norm.ln_{i}.', x_) for i, x_ in enumerate(x)]
    kv = [lin(sd, p + 'kv.module.', x_).reshape(B, -1, 2, num_heads, C // num_heads)
          .permute(2, 0, 3, 1, 4) for x_ in x]
    k, v = [kv[0][0], kv[1][0]], [kv[0][1], kv[1][1]]
    scale = (C // num_heads) ** -0.5
    attn = [((q_ @ k_.transpose(-2, -1)) * scale).softmax(-1) for q_, k_ in zip(q, k)]
    x = [(a @ v_).transpose(1, 2).reshape(B, N, C) for a, v_ in zip(attn, v)]

    def judger(inp):
        h = F.gelu(lin(sd, p + 'relation_judger.0.fc1.', inp))
        return lin(sd, p + 'relation_judger.0.fc2.', h).softmax(-1)

    new = [[], []]
    for bs in range(B):
        for m, o, direction in ((0, 1, 'cross_attn_0_to_1'), (1, 0, 'cross_attn_1_to_0')):
            q_ = x[m][bs].unsqueeze(0)
            score = judger(torch.cat([x[m][bs].unsqueeze(0), x[o][bs].unsqueeze(0)], -1))
            keys = torch.cat([sd[p + 'k_noise.weight'][m] + q_, q_ * score], 0)
            values = torch.cat([sd[p + 'v_noise.weight'][m] + q_, x[o][bs].unsqueeze(0)], 0)
            new[m].append(x[m][bs] + mha(sd, f'{p}{direction}.', q_, keys, values).squeeze(0))
    x = [torch.stack(n) for n in new]
    return [lin(sd, p + 'proj.module.', x_) for x_ in x]


def mlp(sd, p, x, H, W):
    out = []
    for x_ in x:
        h = lin(sd, p + 'fc1.module.', x_)
        B, N, C = h.shape
        h = F.conv2d(h.transpose(1, 2).reshape(B, C, H, W), sd[p + 'dwconv.dwconv.weight'],
                     sd[p + 'dwconv.dwconv.bias'], padding=1, groups=C)
        h = F.gelu(h.flatten(2).transpose(1, 2))
        out.append(lin(sd, p + 'fc2.module.', h))
    return out


def official_encoder(sd, x):
    outs = [[], []]
    for i in range(4):
        pe = f'encoder.patch_embed{i + 1}.'
        w = sd[pe + 'proj.module.weight']
        x = [F.conv2d(x_, w, sd[pe + 'proj.module.bias'], stride=4 if i == 0 else 2,
                      padding=w.shape[-1] // 2) for x_ in x]
        B, _, H, W = x[0].shape
        x = [ln(sd, f'{pe}norm.ln_{m}.', x_.flatten(2).transpose(1, 2)) for m, x_ in enumerate(x)]
        j = 0
        while f'encoder.block{i + 1}.{j}.norm1.ln_0.weight' in sd:
            blk = f'encoder.block{i + 1}.{j}.'
            f = attention(sd, blk + 'attn.', [ln(sd, f'{blk}norm1.ln_{m}.', x_)
                                              for m, x_ in enumerate(x)], H, W, HEADS[i], SR[i])
            x = [x_ + f_ for x_, f_ in zip(x, f)]
            f = mlp(sd, blk + 'mlp.', [ln(sd, f'{blk}norm2.ln_{m}.', x_)
                                       for m, x_ in enumerate(x)], H, W)
            x = [x_ + f_ for x_, f_ in zip(x, f)]
            j += 1
        x = [ln(sd, f'encoder.norm{i + 1}.ln_{m}.', x_) for m, x_ in enumerate(x)]
        x = [x_.reshape(B, H, W, -1).permute(0, 3, 1, 2) for x_ in x]
        for m in (0, 1):
            outs[m].append(x[m])
    return outs


def official_decoder(sd, feats):
    c1 = feats[0]
    emb = []
    for i in (4, 3, 2, 1):
        c = feats[i - 1]
        e = lin(sd, f'decoder.linear_c{i}.proj.', c.flatten(2).transpose(1, 2))
        e = e.permute(0, 2, 1).reshape(c.shape[0], -1, *c.shape[2:])
        if i > 1:
            e = F.interpolate(e, size=c1.shape[2:], mode='bilinear', align_corners=False)
        emb.append(e)
    p = 'decoder.linear_fuse.'
    x = F.conv2d(torch.cat(emb, 1), sd[p + 'conv.weight'])
    x = F.relu(F.batch_norm(x, sd[p + 'bn.running_mean'], sd[p + 'bn.running_var'],
                            sd[p + 'bn.weight'], sd[p + 'bn.bias'], False, 0., 1e-5))
    return F.conv2d(x, sd['decoder.linear_pred.weight'], sd['decoder.linear_pred.bias'])


def official_wetr(sd, rgb, depth):
    feats = official_encoder(sd, [rgb, depth])
    x = [official_decoder(sd, feats[0]), official_decoder(sd, feats[1])]
    alpha = sd['alpha'].softmax(0)
    return x + [alpha[0] * x[0] + alpha[1] * x[1]]


# ------------------------------------------------------------------------------------------------
# tests
# ------------------------------------------------------------------------------------------------


def _save_official(path, **kwargs):
    state = geminifusion_official_state(**kwargs)
    torch.save({'segmenter': state, 'epoch_start': 299, 'best_val': 0.5}, path)
    return {k[len('module.'):]: v for k, v in state.items()}


def _model(config, ckpt):
    from mmengine.config import Config
    from mmseg.registry import MODELS

    import mmfusion.seg  # noqa: F401
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(SHRUNK)
    model = MODELS.build(cfg.model)
    model.load_state_dict(ckpt['state_dict'], strict='official' in config)
    return model.double().eval()


def test_official_checkpoint_evaluates_to_the_official_logits(tool, tmp_path):
    from tests.test_models.test_gemini_segmentation import _real_pair
    src, dst = tmp_path / 'mit-b3.pth.tar', tmp_path / 'mmfusion.pth'
    official = _save_official(src)
    report = tool.main([str(src), str(dst), '--config', OFFICIAL_HEAD['b3'],
                        '--cfg-options'] + SHRINK)
    assert not report.unmapped and not report.missing
    assert report.mapped == len(official) - 2 * 4  # the 4 q/kv pairs merge into in_proj
    model = _model(OFFICIAL_HEAD['b3'], torch.load(dst, weights_only=True))
    rgb, depth = (t.double() for t in _real_pair(size=(64, 96)))
    sd = {k: v.double() if v.is_floating_point() else v for k, v in official.items()}
    with torch.no_grad():
        ours = model(dict(img=rgb, img_depth=depth), mode='tensor')
        ref = official_wetr(sd, rgb, depth)
    for name, o, r in zip(('rgb', 'depth', 'ensemble'), ours, ref):
        assert o.shape == r.shape == (2, 40, 16, 24), name
        assert (o - r).abs().max() <= 1e-9 * r.abs().max(), (name, (o - r).abs().max())
    assert (ref[0] - ref[1]).abs().max() > 1e-3  # two different streams


def test_plain_head_config_gets_backbone_and_reports_the_decoder(tool, tmp_path):
    src, dst = tmp_path / 'mit-b3.pth.tar', tmp_path / 'backbone_only.pth'
    official = _save_official(src)
    report = tool.main([str(src), str(dst), '--config', PLAIN_B3, '--cfg-options'] + SHRINK)
    assert {k for k, _ in report.unmapped} == {k for k in official if k.startswith('decoder.')}
    assert report.missing and all(k.startswith('decode_head.') for k in report.missing)
    assert 'not SegformerMLPHead' in report.summary()
    model = _model(PLAIN_B3, torch.load(dst, weights_only=True))
    state = model.state_dict()
    # norms of both modalities, fusion and merged q/kv come through unchanged
    torch.testing.assert_close(state['backbone.layers.0.0.norm.1.weight'],
                               official['encoder.patch_embed1.norm.ln_1.weight'].double())
    torch.testing.assert_close(
        state['backbone.layers.2.1.0.attn.fusion.relation_discriminator.2.bias'],
        official['encoder.block3.0.attn.relation_judger.0.fc2.bias'].double())
    torch.testing.assert_close(
        state['backbone.layers.1.1.0.attn.attn.in_proj_weight'],
        torch.cat([official['encoder.block2.0.attn.q.module.weight'],
                   official['encoder.block2.0.attn.kv.module.weight']]).double())


@pytest.mark.parametrize('kwargs,expected', [
    (dict(depths=(1, 2, 1, 1)), 'encoder.block2.1.norm1.ln_0.weight [32] maps to '
     'backbone.layers.1.1.1.norm1.0.weight, which the target model does not have'),
    (dict(embed_dims=(32, 64, 160, 256)), 'encoder.patch_embed1.proj.module.weight has shape '
     '[32, 3, 7, 7], the target backbone.layers.0.0.projection.weight has [16, 3, 7, 7]'),
])
def test_wrong_architecture_fails_cleanly(tool, tmp_path, capsys, kwargs, expected):
    src = tmp_path / 'other.pth.tar'
    _save_official(src, **kwargs)
    with pytest.raises(SystemExit) as exc:
        run_cli(tool.main, [str(src), str(tmp_path / 'o.pth'), '--config', OFFICIAL_HEAD['b3'],
                            '--cfg-options'] + SHRINK)
    lines = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(lines) == 1
    assert lines[0].startswith(f'error: {src}: architecture mismatch') and expected in lines[0]
    assert not (tmp_path / 'o.pth').exists()


def test_help_and_official_head_configs():
    from mmengine.config import Config
    proc = run_tool([PYTHON, TOOL, '--help'], timeout=120)
    assert 'SegformerMLPHead' in proc.stdout
    for arch, path in OFFICIAL_HEAD.items():
        cfg = Config.fromfile(path)
        assert cfg.model.decode_head.type == 'SegformerMLPHead'
        assert cfg.model.backbone.arch == arch and cfg.model.backbone.init_cfg is None
        assert 'geminifusion_official_to_mmfusion.py' in open(path).read()
