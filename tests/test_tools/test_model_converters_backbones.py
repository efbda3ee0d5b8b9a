"""Pretrained-backbone weights into mmfusion's backbones: torchvision ResNet-50 (direct load),
YOLOv5 v5.x -> both DualStreamCSPDarknet streams, NVIDIA MiT -> GeminiMixVisionTransformer (via
mmseg's mit2mmseg), timm / DeiT ViT -> DAMF's mmseg VisionTransformer (via mmseg's vit2mmseg).

Each source state dict is built here in the source library's layout (names and shapes of its
``state_dict()``, random values), converted where a converter is needed, loaded through the
config's own ``init_cfg=dict(type='Pretrained', checkpoint=...)``, and checked: every mapped
tensor identical to its source (after the documented reshapes), then a forward runs.
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmfusion.utils.checkpoint_conversion import run_cli
from tests.test_tools.official_layouts import (nvidia_mit_state, timm_vit_state,
                                               torchvision_resnet50_state, yolov5l_state)
from tests.utils import PYTHON, REPO_ROOT, load_tool, run_tool

CONFIGS = osp.join(REPO_ROOT, 'projects')
FM_CONFIG = osp.join(CONFIGS, 'FusionMamba', 'configs', 'fusion-mamba_yolox-l_1xb8-200e_llvip.py')
GF_CONFIG = osp.join(CONFIGS, 'GeminiFusion', 'configs',
                     'geminifusion_mit-b3_3xb2-40k_nyudv2-rgbd-480x640.py')
DAMF_CONFIG = osp.join(CONFIGS, 'DAMF', 'configs', 'damf-stage0_vit-b16-detr_8xb2-50e_llvip.py')
SSL_CONFIG = osp.join(CONFIGS, 'SSLFusion', 'configs',
                      'sslfusion_r50-fpn_voxel-rcnn_4xb4-80e_kitti-3d-3class.py')


def _options(**overrides):
    return ['--cfg-options'] + [f'{k}={v}'.replace(' ', '') for k, v in overrides.items()]


def _build_with_pretrained(config, part, checkpoint, scope, overrides):
    """``model.<part>`` of ``config`` (with ``overrides``) initialised from ``checkpoint``
    through its ``init_cfg``, as training initialises it."""
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.utils import import_modules_from_strings
    cfg = Config.fromfile(config)
    cfg.merge_from_dict({f'model.{part}.{k}': v for k, v in overrides.items()})
    import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(scope)
    part_cfg = cfg.model[part]
    part_cfg.init_cfg = dict(type='Pretrained', checkpoint=str(checkpoint))
    module = MODELS.build(part_cfg)
    module.init_weights()
    module.eval()  # mmdet's ResNet.train returns None: do not chain
    return module


# ------------------------------------------------------------------------------------------------
# torchvision ResNet-50 -> SSLFusion image branch: loads directly, no converter
# ------------------------------------------------------------------------------------------------


def test_torchvision_resnet50_loads_directly_into_sslfusion_image_branch(tmp_path):
    cfg = Config.fromfile(SSL_CONFIG)
    assert cfg.model.img_backbone.init_cfg.checkpoint.endswith('resnet50-19c8e357.pth')
    state = torchvision_resnet50_state()
    path = tmp_path / 'resnet50-0676ba61.pth'
    torch.save(state, path)  # torchvision saves a bare state dict
    resnet = _build_with_pretrained(SSL_CONFIG, 'img_backbone', path, 'mmdet3d', {})
    loaded = resnet.state_dict()
    assert set(loaded) == set(state) - {'fc.weight', 'fc.bias'}  # same names, fc not in ours
    for name, value in loaded.items():
        assert torch.equal(value, state[name]), name
    with torch.no_grad():
        outs = resnet(torch.rand(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(1, 256, 16, 24), (1, 512, 8, 12),
                                              (1, 1024, 4, 6), (1, 2048, 2, 3)]


# ------------------------------------------------------------------------------------------------
# YOLOv5 v5.x -> both streams of DualStreamCSPDarknet
# ------------------------------------------------------------------------------------------------

YOLO_SMALL = {'widen_factor': 0.125, 'deepen_factor': 0.33, 'fusion_cfg.num_dssf_blocks': 1}


def test_yolov5_initialises_both_streams(tmp_path):
    tool = load_tool('tools/model_converters/yolov5_to_dual_stream_csp_darknet.py', 'yolov5_cv')
    state = yolov5l_state(width=0.125, depth=0.33)
    src, dst = tmp_path / 'yolov5l_state_dict.pth', tmp_path / 'dual.pth'
    torch.save({'model': state}, src)
    report = tool.main([str(src), str(dst)] + _options(
        **{f'model.backbone.{k}': v for k, v in YOLO_SMALL.items()}))
    assert {k for k, _ in report.unmapped} == {k for k in state if k.startswith('model.10.')}
    assert report.mapped == 2 * (len(state) - 6) and not report.missing
    backbone = _build_with_pretrained(FM_CONFIG, 'backbone', dst, 'mmdet', YOLO_SMALL)
    loaded = backbone.state_dict()
    pairs = {
        'model.0.conv.conv.weight': 'stem.conv.conv.weight',
        'model.2.cv1.bn.running_var': 'stage1.1.main_conv.bn.running_var',
        'model.4.m.2.cv2.conv.weight': 'stage2.1.blocks.2.conv2.conv.weight',
        'model.6.cv3.conv.weight': 'stage3.1.final_conv.conv.weight',
        'model.8.cv2.conv.weight': 'stage4.1.conv2.conv.weight',
        'model.9.cv2.bn.weight': 'stage4.2.short_conv.bn.weight',
    }
    for stream in ('rgb_stream', 'ir_stream'):
        for src_name, name in pairs.items():
            assert torch.equal(loaded[f'{stream}.{name}'], state[src_name]), name
        for name, value in loaded.items():
            if name.startswith(stream):
                assert torch.equal(value, loaded[name.replace(stream, 'ir_stream')]), name
    with torch.no_grad():
        outs = backbone(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [32, 64, 128]


def test_yolov5_v6_layout_is_refused(tmp_path, capsys):
    tool = load_tool('tools/model_converters/yolov5_to_dual_stream_csp_darknet.py', 'yolov5_cv')
    src = tmp_path / 'yolov5l_v7.pth'
    torch.save(yolov5l_state(width=0.125, depth=0.33, stem='conv6'), src)
    with pytest.raises(SystemExit) as exc:
        run_cli(tool.main, [str(src), str(tmp_path / 'o.pth')])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and err.startswith(f'error: {src}: YOLOv5 v6.0+ layout')


# ------------------------------------------------------------------------------------------------
# NVIDIA MiT -> GeminiMixVisionTransformer (mmseg's mit2mmseg)
# ------------------------------------------------------------------------------------------------

MIT_SMALL = dict(embed_dims=16, num_layers=[1, 1, 1, 1])


def test_nvidia_mit_into_gemini_mit_both_modality_norms(tmp_path, capsys):
    tool = load_tool('tools/model_converters/mit_to_gemini_mit.py', 'mit_cv')
    state = nvidia_mit_state()
    src, dst = tmp_path / 'mit_b3.pth', tmp_path / 'mit_gemini.pth'
    torch.save(state, src)
    report = tool.main([str(src), str(dst), '--config', GF_CONFIG] + _options(
        **{f'model.backbone.{k}': v for k, v in MIT_SMALL.items()}))
    assert {k for k, _ in report.unmapped} == {'head.weight', 'head.bias'}
    assert not report.missing
    mit = _build_with_pretrained(GF_CONFIG, 'backbone', dst, 'mmseg', MIT_SMALL)
    loaded = mit.state_dict()
    for m in (0, 1):
        assert torch.equal(loaded[f'layers.0.0.norm.{m}.weight'], state['patch_embed1.norm.weight'])
        assert torch.equal(loaded[f'layers.2.1.0.norm1.{m}.bias'], state['block3.0.norm1.bias'])
        assert torch.equal(loaded[f'layers.1.1.0.attn.norm.{m}.weight'],
                           state['block2.0.attn.norm.weight'])
        assert torch.equal(loaded[f'layers.3.2.{m}.weight'], state['norm4.weight'])
    assert torch.equal(loaded['layers.1.1.0.attn.attn.in_proj_weight'],
                       torch.cat([state['block2.0.attn.q.weight'],
                                  state['block2.0.attn.kv.weight']]))
    assert torch.equal(loaded['layers.0.1.0.ffn.layers.0.weight'],
                       state['block1.0.mlp.fc1.weight'][..., None, None])
    with torch.no_grad():
        outs_a, outs_b = mit(torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96))
    assert [o.shape[1] for o in outs_a] == [16, 32, 80, 128]
    # a MiT with another depth is refused, naming the first tensor without a counterpart
    deeper = tmp_path / 'mit_deeper.pth'
    torch.save(nvidia_mit_state(depths=(1, 1, 2, 1)), deeper)
    with pytest.raises(SystemExit) as exc:
        run_cli(tool.main, [str(deeper), str(tmp_path / 'o.pth'), '--config', GF_CONFIG]
                + _options(**{f'model.backbone.{k}': v for k, v in MIT_SMALL.items()}))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and 'block3.1.norm1.weight' in err and str(deeper) in err


# ------------------------------------------------------------------------------------------------
# timm / DeiT ViT -> DAMF's mmseg VisionTransformer (mmseg's vit2mmseg)
# ------------------------------------------------------------------------------------------------

VIT_SMALL = dict(embed_dims=64, num_layers=2, num_heads=4, img_size=(64, 80))


@pytest.mark.parametrize('wrapper,patch_bias', [('timm', False), ('deit', True)])
def test_timm_and_deit_vit_into_damf_backbone(tmp_path, wrapper, patch_bias):
    tool = load_tool('tools/model_converters/vit_to_mmseg_vit.py', 'vit_cv')
    state = timm_vit_state()
    src, dst = tmp_path / f'vit_{wrapper}.pth', tmp_path / 'vit_mmseg.pth'
    torch.save({'model': state} if wrapper == 'deit' else state, src)
    small = dict(VIT_SMALL, patch_bias=patch_bias)
    report = tool.main([str(src), str(dst), '--config', DAMF_CONFIG] + _options(
        **{f'model.backbone.{k}': v for k, v in small.items()}))
    dropped = set() if patch_bias else {'patch_embed.proj.bias'}
    assert {k for k, _ in report.unmapped} == {'head.weight', 'head.bias'} | dropped
    assert not report.missing
    assert ('patch_bias=True to keep it' in report.summary()) != patch_bias
    assert 'pos_embed resized from a 14x14 to a 4x5 grid (bicubic)' in report.summary()
    vit = _build_with_pretrained(DAMF_CONFIG, 'backbone', dst, 'mmdet', small)
    loaded = vit.state_dict()
    assert torch.equal(loaded['layers.1.attn.attn.in_proj_weight'],
                       state['blocks.1.attn.qkv.weight'])
    assert torch.equal(loaded['layers.0.ffn.layers.0.0.weight'], state['blocks.0.mlp.fc1.weight'])
    assert torch.equal(loaded['ln1.weight'], state['norm.weight'])
    if patch_bias:
        assert torch.equal(loaded['patch_embed.projection.bias'], state['patch_embed.proj.bias'])
    assert torch.equal(loaded['cls_token'], state['cls_token'])
    assert loaded['pos_embed'].shape == (1, 21, 64)
    assert torch.equal(loaded['pos_embed'][:, 0], state['pos_embed'][:, 0])  # CLS position kept
    with torch.no_grad():
        outs = vit(torch.rand(1, 3, 64, 80))
    assert outs[0][0].shape == (1, 64, 4, 5)


def test_backbone_converters_help_and_config_comments():
    for script in ('yolov5_to_dual_stream_csp_darknet', 'mit_to_gemini_mit', 'vit_to_mmseg_vit'):
        proc = run_tool([PYTHON, f'tools/model_converters/{script}.py', '--help'], timeout=120)
        assert 'Exit status 2' in proc.stdout and '--cfg-options' in proc.stdout
    damf = open(osp.join(CONFIGS, 'DAMF', 'configs', '_base_', 'models',
                         'damf-stage0_vit-b16-detr.py')).read()
    assert 'tools/model_converters/vit_to_mmseg_vit.py' in damf
    gemini = open(GF_CONFIG).read()
    assert 'tools/model_converters/mit_to_gemini_mit.py' in gemini
