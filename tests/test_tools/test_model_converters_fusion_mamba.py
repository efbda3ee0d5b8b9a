"""tools/model_converters/fusion_mamba_official_to_mmfusion.py and the ``official_dssf`` switch.

A state dict in the official Fusion-Mamba layout (``yolov5l-fusionmamba.yaml`` at width 1/8,
depth 1/3, 2 DSSF blocks per FMB, random values) is converted and loaded strictly into
``DualStreamCSPDarknet`` with ``official_dssf=True``; the three fused levels are compared with
a reference forward written here from the official code's equations (``Focus``, ``Conv``,
``C3``, ``SPP``, ``SS2D.forward_corev0``, ``VSSBlock``, ``chnnel_swapping_Vmamba``,
``Cross_modal_Vmaba_module``, ``Cross_Block``, ``CrossLayer``, ``Add2``, ``Add`` of
github.com/EhanDong/Fusion-Mamba ``models/common.py``), evaluated on the official names.
Tolerance: max |mmfusion - reference| <= 1e-4 * max |reference| per level (fp32; both sides
scan in fp32 as the official code does).
"""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

from mmfusion.ops.selective_scan import selective_scan_reference
from mmfusion.utils.checkpoint_conversion import run_cli
from tests.test_tools.official_layouts import fusion_mamba_official_state
from tests.utils import PYTHON, REPO_ROOT, load_tool, run_tool

pytestmark = pytest.mark.default_scope('mmdet')

TOOL = 'tools/model_converters/fusion_mamba_official_to_mmfusion.py'
WIDTH, DEPTH, NUM_DSSF = 0.125, 0.33, 2
SMALL = [f'model.backbone.widen_factor={WIDTH}', f'model.backbone.deepen_factor={DEPTH}',
         f'model.backbone.fusion_cfg.num_dssf_blocks={NUM_DSSF}']
BN_EPS = 1e-3  # YOLOv5 initialize_weights sets BatchNorm2d eps = 1e-3


@pytest.fixture(scope='module')
def tool():
    return load_tool(TOOL, 'fusion_mamba_official_to_mmfusion')


# ------------------------------------------------------------------------------------------------
# reference forward on the official names, from the official equations
# ------------------------------------------------------------------------------------------------


def conv(sd, p, x, stride=1):
    w = sd[p + 'conv.weight']
    x = F.conv2d(x, w, stride=stride, padding=w.shape[-1] // 2)
    x = F.batch_norm(x, sd[p + 'bn.running_mean'], sd[p + 'bn.running_var'],
                     sd[p + 'bn.weight'], sd[p + 'bn.bias'], False, 0., BN_EPS)
    return F.silu(x)


def focus(sd, p, x):
    x = torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], 1)
    return conv(sd, p + 'conv.', x)


def c3(sd, p, x, shortcut=True):
    y = conv(sd, p + 'cv1.', x)
    i = 0
    while f'{p}m.{i}.cv1.conv.weight' in sd:
        z = conv(sd, f'{p}m.{i}.cv2.', conv(sd, f'{p}m.{i}.cv1.', y))
        y = y + z if shortcut else z
        i += 1
    return conv(sd, p + 'cv3.', torch.cat([y, conv(sd, p + 'cv2.', x)], 1))


def spp(sd, p, x):
    x = conv(sd, p + 'cv1.', x)
    pools = [F.max_pool2d(x, k, 1, k // 2) for k in (5, 9, 13)]
    return conv(sd, p + 'cv2.', torch.cat([x] + pools, 1))


def layer_norm(sd, p, x):
    return F.layer_norm(x, x.shape[-1:], sd[p + 'weight'], sd[p + 'bias'], 1e-5)


def ss2d_core(sd, p, x):
    """``forward_corev0``: x (B, D, H, W) -> y1 + y2 + y3 + y4, (B, D, L)."""
    B, C, H, W = x.shape
    L, K = H * W, 4
    x_hwwh = torch.stack([x.view(B, -1, L), x.transpose(2, 3).contiguous().view(B, -1, L)], 1)
    xs = torch.cat([x_hwwh, torch.flip(x_hwwh, dims=[-1])], dim=1)
    a_logs = sd[p + 'A_logs']
    d_state = a_logs.shape[1]
    x_proj = sd[p + 'x_proj_weight']
    rank = x_proj.shape[1] - 2 * d_state
    x_dbl = torch.einsum('bkdl,kcd->bkcl', xs, x_proj)
    dts, Bs, Cs = torch.split(x_dbl, [rank, d_state, d_state], dim=2)
    dts = torch.einsum('bkrl,kdr->bkdl', dts, sd[p + 'dt_projs_weight'])
    out_y = selective_scan_reference(
        xs.float().reshape(B, -1, L), dts.float().reshape(B, -1, L),
        -torch.exp(a_logs.float()), Bs.float(), Cs.float(), sd[p + 'Ds'].float(), z=None,
        delta_bias=sd[p + 'dt_projs_bias'].float().view(-1), delta_softplus=True)
    out_y = out_y.view(B, K, -1, L)
    inv_y = torch.flip(out_y[:, 2:4], dims=[-1])
    wh_y = out_y[:, 1].view(B, -1, W, H).transpose(2, 3).contiguous().view(B, -1, L)
    invwh_y = inv_y[:, 1].view(B, -1, W, H).transpose(2, 3).contiguous().view(B, -1, L)
    return out_y[:, 0] + inv_y[:, 0] + wh_y + invwh_y


def ss2d(sd, p, x):
    """Official ``SS2D.forward``, x (B, H, W, C)."""
    B, H, W, _ = x.shape
    x, z = F.linear(x, sd[p + 'in_proj.weight']).chunk(2, dim=-1)
    x = F.silu(F.conv2d(x.permute(0, 3, 1, 2), sd[p + 'conv2d.weight'], sd[p + 'conv2d.bias'],
                        padding=1, groups=x.shape[-1]))
    y = ss2d_core(sd, p, x).transpose(1, 2).contiguous().view(B, H, W, -1)
    y = layer_norm(sd, p + 'out_norm.', y) * F.silu(z)
    return F.linear(y, sd[p + 'out_proj.weight'])


def sscs(sd, p, x1, x2):
    """``chnnel_swapping_Vmamba`` (depth 1): (B, C, H, W) pair -> pair."""
    x1, x2 = x1.permute(0, 2, 3, 1), x2.permute(0, 2, 3, 1)
    a, b = torch.split(x1, x1.shape[-1] // 4, -1), torch.split(x2, x2.shape[-1] // 4, -1)
    x1 = torch.cat([a[0], b[1], a[2], b[3]], -1)
    x2 = torch.cat([b[0], a[1], b[2], a[3]], -1)
    x1 = x1 + ss2d(sd, p + 'blocks1.0.self_attention.', layer_norm(sd, p + 'blocks1.0.ln_1.', x1))
    x2 = x2 + ss2d(sd, p + 'blocks2.0.self_attention.', layer_norm(sd, p + 'blocks2.0.ln_1.', x2))
    return x1.permute(0, 3, 1, 2), x2.permute(0, 3, 1, 2)


def cross_modal(sd, p, x1, x2):
    """``Cross_modal_Vmaba_module.forward`` on (B, H, W, C), as written officially."""
    B, H, W, _ = x1.shape
    x1, z1 = F.linear(x1, sd[p + 'in_proj1.weight']).chunk(2, dim=-1)
    x2, z2 = F.linear(x2, sd[p + 'in_proj2.weight']).chunk(2, dim=-1)
    d = x1.shape[-1]
    x1 = F.silu(F.conv2d(x1.permute(0, 3, 1, 2), sd[p + 'conv2d1.weight'],
                         sd[p + 'conv2d1.bias'], padding=1, groups=d))
    x2 = F.silu(F.conv2d(x2.permute(0, 3, 1, 2), sd[p + 'conv2d2.weight'],
                         sd[p + 'conv2d2.bias'], padding=1, groups=d))
    y1 = ss2d_core(sd, p, x1).transpose(1, 2).contiguous().view(B, H, W, -1)
    y2 = ss2d_core(sd, p, x2).transpose(1, 2).contiguous().view(B, H, W, -1)
    y1 = layer_norm(sd, p + 'out_norm1.', y1)
    y2 = layer_norm(sd, p + 'out_norm2.', y2)
    y1 = y1 * F.silu(z1) + y2 * F.silu(z1)
    out1 = F.linear(y1, sd[p + 'out_proj1.weight'])
    y2 = y1 * F.silu(z2) + y2 * F.silu(z2)  # y1 is the mixed RGB result here
    out2 = F.linear(y2, sd[p + 'out_proj2.weight'])
    return out1, out2


def cross_layer(sd, p, x1, x2):
    """``CrossLayer``: every ``Cross_Block`` on the same input, the last output kept."""
    x1, x2 = x1.permute(0, 2, 3, 1), x2.permute(0, 2, 3, 1)
    k = 0
    while f'{p}blocks.{k}.ln_1.weight' in sd:
        blk = f'{p}blocks.{k}.'
        c1, c2 = cross_modal(sd, blk + 'self_attention.', layer_norm(sd, blk + 'ln_1.', x1),
                             layer_norm(sd, blk + 'ln_2.', x2))
        out1, out2 = x1 + c1, x2 + c2
        k += 1
    return out1.permute(0, 3, 1, 2), out2.permute(0, 3, 1, 2)


def official_forward(sd, rgb, ir):
    """``Model.forward_once`` up to layer 34: the fused P3, P4, P5 fed to the YOLOv5 head."""
    def stem(base, x):
        x = conv(sd, f'model.{base + 1}.', focus(sd, f'model.{base}.', x), stride=2)
        x = c3(sd, f'model.{base + 2}.', x)
        return c3(sd, f'model.{base + 4}.', conv(sd, f'model.{base + 3}.', x, stride=2))

    def fmb(i_sscs, x1, x2):
        t = cross_layer(sd, f'model.{i_sscs + 1}.', *sscs(sd, f'model.{i_sscs}.', x1, x2))
        return x1 + t[0], x2 + t[1]  # Add2

    p3 = fmb(10, stem(0, rgb), stem(5, ir))
    p4 = fmb(18, *(c3(sd, f'model.{i + 1}.', conv(sd, f'model.{i}.', x, stride=2))
                   for i, x in zip((14, 16), p3)))

    def last_stage(i, x):
        x = spp(sd, f'model.{i + 1}.', conv(sd, f'model.{i}.', x, stride=2))
        return c3(sd, f'model.{i + 2}.', x, shortcut=False)

    p5 = fmb(28, *(last_stage(i, x) for i, x in zip((22, 25), p4)))
    return [a + b for a, b in (p3, p4, p5)]  # Add


# ------------------------------------------------------------------------------------------------
# tests
# ------------------------------------------------------------------------------------------------


def _backbone(official_dssf=True):
    from mmdet.registry import MODELS

    import mmfusion.det  # noqa: F401
    return MODELS.build(dict(
        type='DualStreamCSPDarknet', deepen_factor=DEPTH, widen_factor=WIDTH,
        fusion_cfg=dict(type='FusionMambaBlock', num_dssf_blocks=NUM_DSSF,
                        official_dssf=official_dssf),
        spp_kernal_sizes=(5, 9, 13), norm_cfg=dict(type='BN', momentum=0.03, eps=BN_EPS),
        act_cfg=dict(type='Swish'))).eval()


def _images(seed=1):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(1, 3, 64, 96, generator=gen), torch.rand(1, 3, 64, 96, generator=gen))


@pytest.fixture(scope='module')
def converted(tool, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('fusion_mamba')
    state = fusion_mamba_official_state(WIDTH, DEPTH, NUM_DSSF)
    src = tmp / 'official.pth'
    torch.save({'model': {k: v.half() if v.is_floating_point() else v
                          for k, v in state.items()}}, src)  # official train.py keeps fp16
    dst = tmp / 'mmfusion.pth'
    report = tool.main([str(src), str(dst), '--cfg-options'] + SMALL)
    return state, report, torch.load(dst, weights_only=True)


def test_streams_and_fmbs_equal_the_official_forward(converted):
    state, report, ckpt = converted
    assert report.mapped > 0 and not report.missing  # every backbone tensor filled
    backbone = _backbone()
    dst = {k[len('backbone.'):]: v for k, v in ckpt['state_dict'].items()}
    backbone.load_state_dict(dst, strict=True)
    # the reference sees the same (fp16-rounded) weights the converter wrote
    ref_state = {k: v.half().float() if v.is_floating_point() else v for k, v in state.items()}
    rgb, ir = _images()
    with torch.no_grad():
        ours = backbone(rgb, ir)
        ref = official_forward(ref_state, rgb, ir)
        corrected = _backbone(official_dssf=False)
        corrected.load_state_dict(dst, strict=True)
        fixed = corrected(rgb, ir)
    assert [tuple(o.shape) for o in ours] == [(1, 32, 8, 12), (1, 64, 4, 6), (1, 128, 2, 3)]
    for o, r in zip(ours, ref):
        assert (o - r).abs().max() <= 1e-4 * r.abs().max(), (o - r).abs().max()
    # the corrected DSSF (default) computes something else on the same weights
    assert (fixed[0] - ref[0]).abs().max() > 1e-3 * ref[0].abs().max()


def test_unmapped_official_head_is_reported_with_shapes(converted, capsys):
    state, report, ckpt = converted
    unmapped = dict(report.unmapped)
    head = {k for k in state if int(k.split('.')[1]) >= 35}
    assert set(unmapped) == head  # exactly the YOLOv5 PAN neck and Detect head
    assert unmapped['model.49.m.0.weight'] == (18, 32, 1, 1)
    assert report.mapped == len(state) - len(head) == len(ckpt['state_dict'])
    assert all(k.startswith('backbone.') for k in ckpt['state_dict'])
    assert 'unmapped source tensors' in report.summary()
    assert 'model.49.anchors [3, 3, 2]' in report.summary()


def test_wrong_width_fails_cleanly_naming_file_key_and_shapes(tool, tmp_path, capsys):
    src = tmp_path / 'wide.pth'
    torch.save(fusion_mamba_official_state(0.25, DEPTH, NUM_DSSF), src)
    with pytest.raises(SystemExit) as exc:
        run_cli(tool.main, [str(src), str(tmp_path / 'out.pth'), '--cfg-options'] + SMALL)
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    message = lines[0]
    assert str(src) in message and 'architecture mismatch' in message
    assert 'model.0.conv.conv.weight has shape [16, 12, 3, 3]' in message
    assert 'backbone.rgb_stream.stem.conv.conv.weight has [8, 12, 3, 3]' in message
    assert not (tmp_path / 'out.pth').exists()


def test_unreadable_sources_fail_cleanly(tool, tmp_path, capsys):
    missing = tmp_path / 'nothing.pth'
    with pytest.raises(SystemExit) as exc:
        run_cli(tool.main, [str(missing), str(tmp_path / 'o.pth')])
    assert exc.value.code == 2
    assert f'{missing}: no such file' in capsys.readouterr().err
    pickled = tmp_path / 'pickled.pt'
    torch.save({'model': torch.nn.Conv2d(3, 8, 3)}, pickled)  # like YOLOv5's train.py
    with pytest.raises(SystemExit) as exc:
        run_cli(tool.main, [str(pickled), str(tmp_path / 'o.pth')])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and str(pickled) in err and 'state_dict()' in err


def test_help_and_configs_use_the_switch():
    from mmengine.config import Config
    proc = run_tool([PYTHON, TOOL, '--help'], timeout=120)
    assert proc.returncode == 0 and 'official_dssf=True' in proc.stdout
    for ds in ('llvip', 'm3fd', 'flir-aligned'):
        path = osp.join(REPO_ROOT, 'projects', 'FusionMamba', 'configs',
                        f'fusion-mamba-official-dssf_yolox-l_1xb8-200e_{ds}.py')
        cfg = Config.fromfile(path)
        assert cfg.model.backbone.fusion_cfg.official_dssf is True
        assert cfg.load_from.endswith(f'fusion-mamba_{ds}_official.pth')
        assert 'fusion_mamba_official_to_mmfusion.py' in open(path).read()
