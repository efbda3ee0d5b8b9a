"""Fusion-Mamba detector: the two-stream backbone, the paired detector and every project config.

Every config in projects/FusionMamba/configs/ is built with its structure unchanged (backbone,
fusion block and its ablation switches, neck, head, preprocessor, pipelines) and only its widths
and input size shrunk, then runs ``loss`` and ``predict`` on real LLVIP pairs (tests/data/llvip,
converted by mmfusion's LLVIP converter) loaded through the config's own test pipeline. The
forward/backward runs of the ablation and M3FD/FLIR configs are marked slow (the PyTorch
selective scans of 8 DSSF blocks under autograd cost seconds each on 2 CPU cores); the main LLVIP
config, the no-fusion baseline and the small config run by default, and every config is built
and checked by default.
"""
import copy
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.models.backbones import CSPDarknet
from mmdet.registry import DATASETS, MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from torch import nn

import mmfusion.det  # noqa: F401  (registers the modules, as custom_imports does)
from mmfusion.converters.llvip import create_llvip_infos
from mmfusion.models.backbones.dual_stream_csp_darknet import DualStreamCSPDarknet
from mmfusion.models.fusion.fusion_mamba_block import FusionMambaBlock
from tests.utils import REPO_ROOT

pytestmark = pytest.mark.default_scope('mmdet')

CONFIG_DIR = osp.join(REPO_ROOT, 'projects', 'FusionMamba', 'configs')
CONFIGS = sorted(glob.glob(osp.join(CONFIG_DIR, '*.py')))
LLVIP_ROOT = osp.join(REPO_ROOT, 'tests', 'data', 'llvip', 'LLVIP')
TEST_SIZE = 64  # input side for the tests (the configs use 640, the small one 160x128)


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    """One torch thread: the selective scans are thousands of small ops, which on a shared
    2-core machine ran several times slower with 2 threads (measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def llvip_test_json(tmp_path_factory):
    """COCO json of the 5 bundled LLVIP test pairs (10 person boxes)."""
    out = str(tmp_path_factory.mktemp('llvip_infos'))
    return create_llvip_infos(LLVIP_ROOT, out)['test']


def shrink(cfg: Config) -> Config:
    """Tiny widths/depths (the structure kept) and a TEST_SIZE input, in place."""
    model = cfg.model
    model.backbone.deepen_factor = 0.33
    model.backbone.widen_factor = 0.125
    model.neck.update(in_channels=[32, 64, 128], out_channels=32, num_csp_blocks=1)
    model.bbox_head.update(in_channels=32, feat_channels=32)
    for pipeline in (cfg.test_dataloader.dataset.pipeline,
                     cfg.train_dataloader.dataset.get('pipeline', [])):
        for t in pipeline:
            if t['type'] == 'PairedResize':
                t['scale'] = (TEST_SIZE, TEST_SIZE)
            elif t['type'] == 'PairedMosaic':
                t['img_scale'] = (TEST_SIZE, TEST_SIZE)
            elif t['type'] == 'PairedRandomAffine':
                t['border'] = (-TEST_SIZE // 2, -TEST_SIZE // 2)
    return cfg


def point_at_sample(dataset_cfg: dict, ann_file: str) -> dict:
    """The dataset config re-pointed at the converted LLVIP sample."""
    return dict(dataset_cfg, data_root=LLVIP_ROOT, ann_file=ann_file,
                data_prefix=dict(img='', img_ir=''))


def real_batch(cfg: Config, ann_file: str, indices=(0, 3)) -> dict:
    """A collated batch of real pairs from the config's own test dataset and pipeline."""
    dataset = DATASETS.build(point_at_sample(cfg.test_dataloader.dataset, ann_file))
    return pseudo_collate([dataset[i] for i in indices])


def test_backbone_shapes_and_errors():
    torch.manual_seed(0)
    fusion_cfg = dict(type='FusionMambaBlock', num_dssf_blocks=2, d_state=4)
    backbone = DualStreamCSPDarknet(deepen_factor=0.33, widen_factor=0.125,
                                    fusion_cfg=fusion_cfg).eval()
    assert backbone.out_channels == (32, 64, 128)
    assert sorted(backbone.fusions) == ['2', '3', '4']
    assert all(isinstance(f, FusionMambaBlock) and f.in_channels == c
               for f, c in zip(backbone.fusions.values(), (32, 64, 128)))
    # the two streams are stock CSPDarknets with their own weights
    assert isinstance(backbone.rgb_stream, CSPDarknet)
    assert backbone.rgb_stream.stem.conv.conv.weight.data_ptr() != \
        backbone.ir_stream.stem.conv.conv.weight.data_ptr()
    img, img_ir = torch.randn(2, 3, 64, 96), torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        outs = backbone(img, img_ir)
    assert [tuple(o.shape) for o in outs] == [(2, 32, 8, 12), (2, 64, 4, 6), (2, 128, 2, 3)]
    assert all(torch.isfinite(o).all() for o in outs)

    with pytest.raises(TypeError, match='same shape'):
        backbone(img, img_ir[:, :, :32])
    with pytest.raises(ValueError, match='out_indices'):
        DualStreamCSPDarknet(widen_factor=0.125, out_indices=(2, 5), fusion_cfg=None)


class _SwapFusion(nn.Module):
    """Stand-in fusion with a visible effect: returns (x_ir + 1, 2 * x_rgb)."""

    def __init__(self, in_channels):
        super().__init__()
        self.in_channels = in_channels

    def forward(self, x_rgb, x_ir):
        return x_ir + 1, 2 * x_rgb


MODELS.register_module('_TestSwapFusion', module=_SwapFusion, force=True)


@pytest.mark.parametrize('fuse_into_streams', [True, False])
def test_backbone_wiring(fuse_into_streams):
    """Fusion at P3/P4/P5, enhanced features fed to the next stage (official), sum to the neck."""
    torch.manual_seed(0)
    backbone = DualStreamCSPDarknet(deepen_factor=0.33, widen_factor=0.125,
                                    fusion_cfg=dict(type='_TestSwapFusion'),
                                    fuse_into_streams=fuse_into_streams).eval()
    img, img_ir = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64)
    expected, x, x_ir = [], img, img_ir
    for i, name in enumerate(backbone.rgb_stream.layers):
        x = getattr(backbone.rgb_stream, name)(x)
        x_ir = getattr(backbone.ir_stream, name)(x_ir)
        if i >= 2:
            y, y_ir = x_ir + 1, 2 * x
            expected.append(y + y_ir)
            if fuse_into_streams:
                x, x_ir = y, y_ir
    with torch.no_grad():
        outs = backbone(img, img_ir)
        for got, want in zip(outs, expected):
            torch.testing.assert_close(got, want)
        # no fusion: the sum of the two independent stock streams
        backbone.fusions = None
        plain = backbone(img, img_ir)
        for got, a, b in zip(plain, backbone.rgb_stream(img), backbone.ir_stream(img_ir)):
            torch.testing.assert_close(got, a + b)
    assert len(outs) == 3 and not torch.allclose(outs[2], plain[2])


def test_detector_rejects_unpaired_inputs():
    cfg = shrink(Config.fromfile(osp.join(CONFIG_DIR,
                                          'dual-stream-add_yolox-l_1xb8-200e_llvip.py')))
    model = MODELS.build(cfg.model)
    with pytest.raises(TypeError, match="'img', 'img_ir'"):
        model.extract_feat(torch.zeros(1, 3, 64, 64))
    with pytest.raises(TypeError, match='img_ir'):
        model.extract_feat(dict(img=torch.zeros(1, 3, 64, 64)))


# what each config must contain beyond the shared structure: fusion_cfg overrides (None = none)
EXPECTED_FUSION = {
    'fusion-mamba_yolox-l_1xb8-200e_llvip.py': dict(num_dssf_blocks=8),
    'fusion-mamba_yolox-l_1xb8-200e_m3fd.py': dict(num_dssf_blocks=8),
    'fusion-mamba_yolox-l_1xb8-200e_flir-aligned.py': dict(num_dssf_blocks=8),
    'fusion-mamba-train-all_yolox-l_1xb8-200e_llvip.py': dict(num_dssf_blocks=8),
    'fusion-mamba-no-sscs_yolox-l_1xb8-200e_llvip.py': dict(use_sscs=False),
    'fusion-mamba-no-dssf_yolox-l_1xb8-200e_llvip.py': dict(use_dssf=False),
    'fusion-mamba-dssf4_yolox-l_1xb8-200e_llvip.py': dict(num_dssf_blocks=4),
    'fusion-mamba-dssf2_yolox-l_1xb8-200e_llvip.py': dict(num_dssf_blocks=2),
    'fusion-mamba-single-branch_yolox-l_1xb8-200e_llvip.py': dict(single_branch=True),
    'dual-stream-add_yolox-l_1xb8-200e_llvip.py': None,
    'fusion-mamba-small_yolox_1xb6-150e_llvip-sample.py': dict(num_dssf_blocks=2, d_state=4),
    'fusion-mamba-official-dssf_yolox-l_1xb8-200e_llvip.py': dict(official_dssf=True),
    'fusion-mamba-official-dssf_yolox-l_1xb8-200e_m3fd.py': dict(official_dssf=True),
    'fusion-mamba-official-dssf_yolox-l_1xb8-200e_flir-aligned.py': dict(official_dssf=True),
}
NUM_CLASSES = {'m3fd': 6, 'flir-aligned': 3}


FAST_CONFIGS = ('fusion-mamba_yolox-l_1xb8-200e_llvip.py',
                'dual-stream-add_yolox-l_1xb8-200e_llvip.py',
                'fusion-mamba-small_yolox_1xb6-150e_llvip-sample.py')


def test_every_config_is_listed():
    assert sorted(map(osp.basename, CONFIGS)) == sorted(EXPECTED_FUSION)


def build_and_check(config):
    """Load, shrink and build a config; check its structure; return (cfg, model)."""
    name = osp.basename(config)
    cfg = shrink(Config.fromfile(config))
    assert cfg.model.type == 'PairedSingleStageDetector'
    assert cfg.model.backbone.type == 'DualStreamCSPDarknet'
    assert cfg.model.backbone.out_indices == (2, 3, 4)
    assert cfg.model.neck.type == 'YOLOXPAFPN' and cfg.model.bbox_head.type == 'YOLOXHead'
    assert cfg.val_evaluator.type == 'CocoMetric' and cfg.val_evaluator.metric == 'bbox'
    dataset_name = name.rsplit('_', 1)[1][:-3]
    assert cfg.model.bbox_head.num_classes == NUM_CLASSES.get(dataset_name, 1)
    expected = EXPECTED_FUSION[name]
    if expected is None:
        assert cfg.model.backbone.fusion_cfg is None
    else:
        assert cfg.model.backbone.fusion_cfg.type == 'FusionMambaBlock'
        assert {k: cfg.model.backbone.fusion_cfg.get(k) for k in expected} == expected

    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    if expected is not None:  # the switches reached the built blocks
        fmb = model.backbone.fusions['2']
        assert (fmb.sscs is None) == (expected.get('use_sscs') is False)
        assert (fmb.dssf is None) == (expected.get('use_dssf') is False)
        if fmb.dssf is not None:
            assert len(fmb.dssf.blocks) == expected.get('num_dssf_blocks', 8)
            assert all(b.single_branch == expected.get('single_branch', False)
                       for b in fmb.dssf.blocks)
            assert fmb.dssf.official_dssf == expected.get('official_dssf', False)
    else:
        assert model.backbone.fusions is None
    return cfg, model


@pytest.mark.parametrize('config', CONFIGS, ids=osp.basename)
def test_config_builds(config):
    build_and_check(config)


@pytest.mark.parametrize('config', [
    c if osp.basename(c) in FAST_CONFIGS else pytest.param(c, marks=pytest.mark.slow)
    for c in CONFIGS
], ids=osp.basename)
def test_config_loss_and_predict_on_llvip(config, llvip_test_json):
    cfg, model = build_and_check(config)

    # the LLVIP sample (person only) drives every config; labels stay < num_classes
    data = model.data_preprocessor(real_batch(cfg, llvip_test_json), training=True)
    assert data['inputs']['img'].shape == data['inputs']['img_ir'].shape == \
        (2, 3, TEST_SIZE, TEST_SIZE)
    assert not torch.equal(data['inputs']['img'], data['inputs']['img_ir'])
    model.train()
    losses = model(**data, mode='loss')
    assert set(losses) >= {'loss_cls', 'loss_bbox', 'loss_obj'}
    total = sum(losses.values())
    assert torch.isfinite(total) and total > 0
    total.backward()
    grads = [p.grad for p in model.backbone.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)

    model.eval()
    data = model.data_preprocessor(real_batch(cfg, llvip_test_json), training=False)
    with torch.no_grad():
        results = model(**data, mode='predict')
    assert len(results) == 2 and all(isinstance(r, DetDataSample) for r in results)
    for res in results:
        pred = res.pred_instances
        h, w = res.ori_shape  # rescaled to the 1280x1024 frame
        assert (h, w) == (1024, 1280)
        assert pred.bboxes.shape[1] == 4 and len(pred.scores) == len(pred.labels)
        if len(pred.bboxes):
            assert pred.scores.min() >= cfg.model.test_cfg.score_thr
            assert pred.scores.max() <= 1
            assert (pred.labels < cfg.model.bbox_head.num_classes).all()


def test_mosaic_training_pipeline_of_config(llvip_test_json):
    """The LLVIP config's MultiImageMixDataset + PairedMosaic + PairedRandomAffine recipe (the
    official mosaic and random perspective) feeds a training step."""
    cfg = shrink(Config.fromfile(CONFIGS[[osp.basename(c) for c in CONFIGS].index(
        'fusion-mamba_yolox-l_1xb8-200e_llvip.py')]))
    wrapper = copy.deepcopy(cfg.train_dataloader.dataset)
    assert wrapper.type == 'MultiImageMixDataset'
    assert [t['type'] for t in wrapper.pipeline][:2] == ['PairedMosaic', 'PairedRandomAffine']
    affine = wrapper.pipeline[1]
    assert affine['about_center'] and affine['max_rotate_degree'] == 0.3
    assert affine['max_shear_degree'] == 0.1 and affine['scaling_ratio_range'] == (0.5, 1.5)
    assert not any('MixUp' in t['type'] for t in wrapper.pipeline)  # not in the RGB-IR loader
    switch = [h for h in cfg.custom_hooks if h['type'] == 'YOLOXModeSwitchHook'][0]
    assert set(switch['skip_type_keys']) == {'PairedMosaic', 'PairedRandomAffine'}
    wrapper.dataset = point_at_sample(wrapper.dataset, llvip_test_json)
    dataset = DATASETS.build(wrapper)
    np.random.seed(0)
    samples = [dataset[i] for i in range(2)]
    for sample in samples:
        assert sample['inputs']['img'].shape == sample['inputs']['img_ir'].shape == \
            (3, TEST_SIZE, TEST_SIZE)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    data = model.data_preprocessor(pseudo_collate(samples), training=True)
    losses = model(**data, mode='loss')
    assert torch.isfinite(sum(losses.values()))


# ---------------------------------------------------------------------------- optimizer groups

SCAN_PARAMS = ('x_proj_weight', 'dt_projs_weight', 'dt_projs_bias', 'A_logs', 'Ds')


def _config(name):
    return shrink(Config.fromfile(osp.join(CONFIG_DIR, name)))


def _groups(cfg):
    """(model, {parameter name: its optimizer group}) for the config's optim_wrapper."""
    from mmengine.optim import build_optim_wrapper
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    by_id = {id(p): g for g in wrapper.optimizer.param_groups for p in g['params']}
    return model, wrapper, {n: by_id.get(id(p)) for n, p in model.named_parameters()}


def test_official_optimizer_groups_leave_the_scan_parameters_out():
    """Official train.py: only module .weight/.bias are optimised; BN weights and biases
    undecayed, every other weight (LayerNorm included) decayed."""
    cfg = _config('fusion-mamba_yolox-l_1xb8-200e_llvip.py')
    assert cfg.optim_wrapper.constructor == 'YOLOv5OptimWrapperConstructor'
    model, wrapper, groups = _groups(cfg)
    left_out = {n for n, g in groups.items() if g is None}
    assert left_out and left_out == {n for n in groups if n.rsplit('.', 1)[-1] in SCAN_PARAMS}
    modules = dict(model.named_modules())
    n_scan = 0
    for name, group in groups.items():
        owner, attr = name.rsplit('.', 1)
        module = modules[owner]
        if attr in SCAN_PARAMS:
            n_scan += 1
            continue
        assert attr in ('weight', 'bias'), name  # nothing else besides the scan parameters
        decayed = attr == 'weight' and not isinstance(module, nn.modules.batchnorm._BatchNorm)
        assert group['weight_decay'] == (5e-4 if decayed else 0.0), name
        if isinstance(module, nn.LayerNorm) and attr == 'weight':
            assert group['weight_decay'] == 5e-4  # as officially: LayerNorm weights decayed
    fmbs = [m for m in model.backbone.fusions.values()]
    assert n_scan == 5 * sum(1 for f in fmbs for m in f.modules() if hasattr(m, 'A_logs'))
    assert [len(g['params']) > 0 for g in wrapper.optimizer.param_groups] == [True] * 3

    # one SGD step on real pairs: every scan parameter has a gradient and stays, the FMB's
    # module weights move
    data = model.data_preprocessor(real_batch(cfg, _llvip_json()), training=True)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    sum(model(**data, mode='loss').values()).backward()
    wrapper.optimizer.step()
    after = dict(model.named_parameters())
    for name in left_out:
        assert after[name].grad is not None and after[name].grad.abs().sum() > 0, name
        assert torch.equal(after[name], before[name]), name
    moved = [n for n, g in groups.items() if g is not None and n.startswith('backbone.fusions')
             and not torch.equal(after[n], before[n])]
    assert len(moved) > 0.5 * sum(1 for n in groups if n.startswith('backbone.fusions'))


def test_train_all_config_optimises_every_parameter():
    cfg = _config('fusion-mamba-train-all_yolox-l_1xb8-200e_llvip.py')
    model, _, groups = _groups(cfg)
    assert all(g is not None for g in groups.values())
    modules = dict(model.named_modules())
    for name, group in groups.items():
        owner, attr = name.rsplit('.', 1)
        module = modules[owner]
        is_norm = isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm))
        no_decay = is_norm or attr in ('bias', 'A_logs', 'Ds')
        assert group['weight_decay'] == (0.0 if no_decay else 5e-4), name


def test_yolov5_constructor_refuses_paramwise_cfg():
    from mmfusion.engine.optimizers.yolov5_optim_wrapper_constructor import \
        YOLOv5OptimWrapperConstructor
    with pytest.raises(ValueError, match='paramwise_cfg'):
        YOLOv5OptimWrapperConstructor(
            dict(optimizer=dict(type='SGD', lr=0.01)), paramwise_cfg=dict(norm_decay_mult=0.))


_LLVIP_JSON = {}


def _llvip_json():
    if 'test' not in _LLVIP_JSON:
        import tempfile
        _LLVIP_JSON['test'] = create_llvip_infos(LLVIP_ROOT, tempfile.mkdtemp())['test']
    return _LLVIP_JSON['test']
