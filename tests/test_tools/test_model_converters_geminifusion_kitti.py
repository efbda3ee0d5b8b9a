"""tools/model_converters/geminifusion_kitti_official_to_mmfusion.py, the two-layer config and
its parameter count.

The official checkpoint layout is the stock mmdet3d MVX-Net (``DynamicMVXFasterRCNN``, whose
names the official branch shares; built here from mmdet3d's own config) with its voxel encoder's
fusion replaced by two ``Gemini_PointFusion`` layers (``fusion_layer.0`` 64 wide,
``fusion_layer.1`` 128 wide; parameter names and shapes from the official ``__init__``). It is
saved as an mmengine training checkpoint (with a message hub), converted, loaded strictly into
the two-layer config's model, and compared tensor for tensor. The official structure has
34,799,308 parameters (README: 34.8 M; stock MVX-Net 33,808,776 = 33.8 M), and so does the
config's model.
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmfusion.utils.checkpoint_conversion import run_cli
from tests.test_tools.official_layouts import Builder, gemini_point_fusion_official
from tests.utils import PYTHON, REPO_ROOT, load_tool, run_tool

pytestmark = pytest.mark.default_scope('mmdet3d')

TOOL = 'tools/model_converters/geminifusion_kitti_official_to_mmfusion.py'
CONFIG = osp.join(REPO_ROOT, 'projects', 'GeminiFusion', 'configs',
                  'mvxnet_gemini-fusion-2layer_fpn_dv_second_secfpn_8xb2-80e_kitti-3d-3class.py')
OFFICIAL_PARAMS = 34_799_308
BUFFERS = ('running_mean', 'running_var', 'num_batches_tracked')


def _build(config):
    from mmdet3d.registry import MODELS

    import mmfusion.det3d  # noqa: F401
    return MODELS.build(Config.fromfile(config).model)


@pytest.fixture(scope='module')
def official(tmp_path_factory):
    """(path of the official-layout checkpoint, its state dict, its parameter count)."""
    import mmdet3d
    stock_cfg = osp.join(osp.dirname(mmdet3d.__file__), '.mim', 'configs', 'mvxnet',
                         'mvxnet_fpn_dv_second_secfpn_8xb2-80e_kitti-3d-3class.py')
    stock = _build(stock_cfg)
    stock_params = sum(p.numel() for p in stock.parameters())
    assert stock_params == 33_808_776  # official README: MVX-Net 33.8 M
    b = Builder(seed=0)
    gen = torch.Generator().manual_seed(1)
    for name, value in stock.state_dict().items():
        if name.startswith('pts_voxel_encoder.fusion_layer.'):
            if name == 'pts_voxel_encoder.fusion_layer.lateral_convs.0.conv.weight':
                gemini_point_fusion_official(  # DynamicVFE_modified: mid = out = pts_channels
                    b, 'pts_voxel_encoder.fusion_layer.0.', mid=64, out=64)
                gemini_point_fusion_official(b, 'pts_voxel_encoder.fusion_layer.1.')
            continue
        b.add(name, torch.randn(value.shape, generator=gen) if value.is_floating_point()
              else value.clone())
    state = b.state
    removed = sum(p.numel() for n, p in stock.named_parameters()
                  if n.startswith('pts_voxel_encoder.fusion_layer.'))
    fusion = sum(v.numel() for k, v in state.items()
                 if '.fusion_layer.' in k and not k.endswith(BUFFERS))
    path = tmp_path_factory.mktemp('kitti') / 'geminifusion_mvxnet.pth'
    from mmengine.logging import HistoryBuffer
    torch.save({'meta': {'epoch': 80}, 'state_dict': state,
                'message_hub': {'log_scalars': {'loss': HistoryBuffer()}}}, path)
    return path, state, stock_params - removed + fusion


def test_two_layer_config_has_the_official_parameter_count(official):
    _, _, official_params = official
    assert official_params == OFFICIAL_PARAMS
    model = _build(CONFIG)
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS
    encoder = model.pts_voxel_encoder
    assert type(encoder).__name__ == 'GeminiDynamicVFE' and len(encoder.fusion_layers) == 2
    first = encoder.fusion_layers[0]
    assert first.out_channels == 64 and len(first.lateral_convs) == 5
    assert first.lateral_convs[0].conv.weight.shape == (64, 256, 3, 3)


@pytest.mark.parametrize('kernel_layout', ['spconv2', 'mmcv'])
def test_official_checkpoint_converts_and_loads_strictly(official, tmp_path, capsys,
                                                         kernel_layout):
    path, state, _ = official
    if kernel_layout == 'mmcv':  # sparse kernels as mmcv's ops save them: (D, H, W, in, out)
        state = {k: v.permute(1, 2, 3, 4, 0) if v.dim() == 5 else v for k, v in state.items()}
        path = tmp_path / 'mmcv_layout.pth'
        torch.save({'state_dict': state}, path)
    else:
        tool = load_tool(TOOL, 'geminifusion_kitti_cv')
        with pytest.raises(SystemExit) as exc:  # an mmengine training checkpoint: not weights-only
            run_cli(tool.main, [str(path), str(tmp_path / 'refused.pth')])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and str(path) in err and '--allow-pickle' in err
    tool = load_tool(TOOL, 'geminifusion_kitti_cv')
    dst = tmp_path / 'mmfusion.pth'
    report = tool.main([str(path), str(dst), '--allow-pickle'])
    assert report.mapped == len(state) and not report.unmapped and not report.missing
    assert ('sparse-conv kernels moved' in report.summary()) == (kernel_layout == 'mmcv')
    converted = torch.load(dst, weights_only=True)['state_dict']
    model = _build(CONFIG)
    model.load_state_dict(converted, strict=True)  # mmdet3d's spconv hook reads the versions
    loaded = model.state_dict()
    conv = 'pts_middle_encoder.conv_input.0.weight'
    expected = state[conv].permute(4, 0, 1, 2, 3) if kernel_layout == 'mmcv' else state[conv]
    assert torch.equal(loaded[conv], expected)
    pairs = {
        'pts_voxel_encoder.fusion_layer.0.cross_attn_1_to_0.in_proj_weight':
            'pts_voxel_encoder.fusion_layers.0.gemini_fusion.attn_b.in_proj_weight',
        'pts_voxel_encoder.fusion_layer.1.relation_judger.0.fc2.bias':
            'pts_voxel_encoder.fusion_layers.1.gemini_fusion.relation_discriminator.2.bias',
        'pts_voxel_encoder.fusion_layer.1.k_noise.weight':
            'pts_voxel_encoder.fusion_layers.1.gemini_fusion.k_noise.weight',
        'pts_voxel_encoder.fusion_layer.0.alpha': 'pts_voxel_encoder.fusion_layers.0.alpha',
        'pts_voxel_encoder.vfe_layers.1.0.weight': 'pts_voxel_encoder.vfe_layers.1.0.weight',
        'img_backbone.layer3.2.conv2.weight': 'img_backbone.layer3.2.conv2.weight',
    }
    for src, dst_name in pairs.items():
        assert torch.equal(loaded[dst_name], state[src]), src


def test_help_and_config():
    proc = run_tool([PYTHON, TOOL, '--help'], timeout=120)
    assert '--allow-pickle' in proc.stdout
    text = open(CONFIG).read()
    assert 'geminifusion_kitti_official_to_mmfusion.py' in text
    assert Config.fromfile(CONFIG).model.pts_voxel_encoder.type == 'GeminiDynamicVFE'
