"""DAMF: fusion module, detector stages 0 and 2, frozen-weight training, checkpoints, configs.

Real input: the LLVIP pairs in tests/data/llvip (converted by mmfusion's LLVIP converter), run
through the small configs' pipelines (projects/DAMF/configs/*llvip-sample.py). The Gaussian
mixture of stage 1 is fitted here on the stage-0 model's CLS features of those images with
``fit_gmm_by_bic`` (what tools/fit_gmm.py runs).
"""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.runner import load_checkpoint

import mmfusion.det  # noqa: F401  (registers the modules, as custom_imports does)
from mmfusion.converters.llvip import create_llvip_infos
from mmfusion.models.fusion.damf_fusion import DistributionAlignedFusion
from mmfusion.models.losses.gmm_fitting import fit_gmm_by_bic
from mmfusion.models.losses.gmm_nll_loss import GaussianMixturePrior
from tests.utils import REPO_ROOT, load_tool

pytestmark = pytest.mark.default_scope('mmdet')

CFG_DIR = osp.join(REPO_ROOT, 'projects', 'DAMF', 'configs')
SMALL_STAGE0 = osp.join(CFG_DIR, 'damf-stage0_vit-tiny-detr_1xb2-300e_llvip-sample.py')
SMALL_STAGE2 = osp.join(CFG_DIR, 'damf-stage2_vit-tiny-detr_1xb2-40e_llvip-sample.py')
LLVIP_ROOT = osp.join(REPO_ROOT, 'tests', 'data', 'llvip', 'LLVIP') + '/'
TINY = 64  # width of the small configs' ViT and DETR


# ----------------------------------------------------------------------------- helpers

@pytest.fixture(scope='module')
def llvip_infos(tmp_path_factory):
    """Folder with the sample's converted json files (llvip_infos_{train,test}.json)."""
    out = str(tmp_path_factory.mktemp('llvip_infos'))
    create_llvip_infos(LLVIP_ROOT, out)
    return out


def _small_cfg(path, infos, **model):
    """A small config with absolute data paths and ``model`` merged into ``cfg.model``."""
    cfg = Config.fromfile(path)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_prefix = dict(img=LLVIP_ROOT, img_ir=LLVIP_ROOT)
        cfg[key].dataset.ann_file = osp.join(infos, 'llvip_infos_test.json')
    cfg.load_from = None
    _set_model(cfg, model)
    return cfg


def _set_model(cfg, overrides):
    """Assign ``{'a.b.c': value}`` entries in ``cfg.model`` (values replace, never merge)."""
    for key, value in overrides.items():
        node, *path, leaf = ['model'] + key.split('.')
        target = cfg[node]
        for part in path:
            target = target[part]
        target[leaf] = value


def _build(cfg):
    from mmdet.registry import MODELS
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.init_weights()
    return model


def _batch(cfg, split='train', num=2):
    """A collated batch of ``num`` real samples through the config's pipeline."""
    from mmdet.registry import DATASETS
    dataset = DATASETS.build(copy.deepcopy(cfg[f'{split}_dataloader'].dataset))
    return pseudo_collate([dataset[i] for i in range(num)])


def _fit_prior(model, cfg, path):
    """Fit P_normal on the stage-0 CLS features of the clean sample images; write ``path``."""
    batch = _batch(cfg, 'val', num=5)
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        features = model.extract_cls_features(data['inputs']['img'])
    gmm, _, _ = fit_gmm_by_bic(features.double().numpy(), (1, 2), seed=0, logger=None)
    GaussianMixturePrior.from_sklearn(gmm).save(path)
    return features


def _detector_state(model):
    """Clone of every state-dict entry (parameters and buffers) outside the fusion module."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()
            if not k.startswith(('fusion.', 'align_loss.'))}


@pytest.fixture(scope='module')
def stage0(llvip_infos, tmp_path_factory):
    """(config, model, checkpoint path, GMM path) of a small stage-0 detector whose neck has a
    BatchNorm (so the frozen detector has running-statistics buffers to keep), after 3 real
    training steps."""
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')  # module fixtures run before the per-test scope marker
    tmp = tmp_path_factory.mktemp('damf_stage0')
    cfg = _small_cfg(SMALL_STAGE0, llvip_infos, **{'neck.norm_cfg': dict(type='BN')})
    torch.manual_seed(0)
    model = _build(cfg)
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    model.train()
    batch = _batch(cfg)
    for _ in range(3):
        model.train_step(batch, optim_wrapper)
    ckpt = str(tmp / 'stage0.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    gmm = str(tmp / 'gmm_normal.pth')
    _fit_prior(model, cfg, gmm)
    return cfg, model, ckpt, gmm


def _stage2_cfg(llvip_infos, stage0, **model):
    _, _, ckpt, gmm = stage0
    overrides = {'neck.norm_cfg': dict(type='BN'), 'align_loss.gmm_file': gmm,
                 'init_cfg': dict(type='Pretrained', checkpoint=ckpt)}
    overrides.update(model)
    return _small_cfg(SMALL_STAGE2, llvip_infos, **overrides)


# ----------------------------------------------------------------------------- fusion module

def test_fusion_parameter_count_vit_b():
    fusion = DistributionAlignedFusion(embed_dims=768, num_heads=8)
    count = sum(p.numel() for p in fusion.parameters())
    assert count == DistributionAlignedFusion.num_parameters_formula(768) == 14_174_208
    groups = {}
    for name, p in fusion.named_parameters():
        part = 'attn' if name.startswith('attn_') else name.split('.')[0]
        groups[part] = groups.get(part, 0) + p.numel()
    # the paper's breakdown: attention 4.7M, gating 2.4M, MLP 7.1M (sums to 14.2M)
    assert groups['attn'] == 4_724_736 and groups['gate'] == 2_361_600
    assert groups['fusion_mlp'] - 3_072 == 7_081_728
    assert round(groups['attn'] / 1e6, 1) == 4.7 and round(groups['gate'] / 1e6, 1) == 2.4
    assert round((groups['fusion_mlp'] - 3_072) / 1e6, 1) == 7.1
    sizes = {n: tuple(p.shape) for n, p in fusion.named_parameters()}
    assert sizes['attn_rgb_from_ir.in_proj_weight'] == (3 * 768, 768)
    assert sizes['gate.0.weight'] == (768, 1536) and sizes['gate.2.weight'] == (1536, 768)
    # the narrower gate (the text's "about 13M") stays available
    narrow = DistributionAlignedFusion(768, num_heads=8, gate_reduction=4)
    narrow_count = sum(p.numel() for p in narrow.parameters())
    assert narrow_count == DistributionAlignedFusion.num_parameters_formula(768, 4) == 12_994_176
    assert narrow_count == count - 2_361_600 + 1_181_568
    assert tuple(narrow.gate[0].weight.shape) == (384, 1536)
    assert sizes['fusion_mlp.1.weight'] == (3072, 1536)
    assert sizes['fusion_mlp.3.weight'] == (768, 3072)
    assert fusion.attn_rgb_from_ir.num_heads == 8
    # ablations drop exactly their parts
    concat = DistributionAlignedFusion(768, cross_attention=False, gating=False)
    assert not hasattr(concat, 'attn_rgb_from_ir') and not hasattr(concat, 'gate')
    assert sum(p.numel() for p in concat.parameters()) == 7_081_728 + 3_072
    cross = DistributionAlignedFusion(768, gating=False)
    assert sum(p.numel() for p in cross.parameters()) == count - 2_361_600


def test_fusion_semantics():
    torch.manual_seed(0)
    b, n, c = 2, 7, 64
    x_rgb, x_ir = torch.randn(b, n, c), torch.randn(b, n, c)
    fusion = DistributionAlignedFusion(c, num_heads=8)
    # starts as the identity on the RGB tokens (zero last layer + RGB residual)
    assert torch.equal(fusion(x_rgb, x_ir), x_rgb)
    for module in (fusion,
                   DistributionAlignedFusion(c, cross_attention=False, gating=False),
                   DistributionAlignedFusion(c, rgb_residual=False)):
        torch.nn.init.normal_(module.fusion_mlp[-1].weight, std=0.1)
        out = module(x_rgb, x_ir)
        assert out.shape == (b, n, c) and torch.isfinite(out).all()
        # infrared tokens reach the output
        assert not torch.allclose(module(x_rgb, x_ir + 1.0), out)
    # the concatenation baseline is per token; cross-attention and gating mix tokens
    concat = DistributionAlignedFusion(c, cross_attention=False, gating=False)
    torch.nn.init.normal_(concat.fusion_mlp[-1].weight, std=0.1)
    x_ir2 = x_ir.clone()
    x_ir2[:, 3] += 1.0
    changed = (concat(x_rgb, x_ir2) - concat(x_rgb, x_ir)).abs().sum(-1) > 0
    assert changed[:, 3].all() and not changed[:, [0, 1, 2, 4, 5, 6]].any()
    for module in (fusion, DistributionAlignedFusion(c, gating=False),
                   DistributionAlignedFusion(c, cross_attention=False)):
        torch.nn.init.normal_(module.fusion_mlp[-1].weight, std=0.1)
        changed = (module(x_rgb, x_ir2) - module(x_rgb, x_ir)).abs().sum(-1) > 0
        assert changed[:, 0].all()
    # gradients reach every parameter
    fusion(x_rgb, x_ir).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in fusion.parameters())


def test_fusion_errors():
    with pytest.raises(ValueError, match='num_heads'):
        DistributionAlignedFusion(60, num_heads=8)
    fusion = DistributionAlignedFusion(64)
    with pytest.raises(ValueError, match='same shape'):
        fusion(torch.randn(1, 5, 64), torch.randn(1, 6, 64))
    with pytest.raises(ValueError, match='64'):
        fusion(torch.randn(1, 5, 32), torch.randn(1, 5, 32))


# ----------------------------------------------------------------------------- stage 0

def test_stage0_loss_predict_on_llvip(llvip_infos):
    cfg = _small_cfg(SMALL_STAGE0, llvip_infos)
    torch.manual_seed(0)
    model = _build(cfg)
    assert not model.with_fusion and model.align_loss is None
    data = model.data_preprocessor(_batch(cfg), True)
    assert data['inputs']['img'].shape == (2, 3, 208, 256)  # 1280x1024 -> 256x205, padded
    losses = model.loss(data['inputs'], data['data_samples'])
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_iou', 'd0.loss_cls',
                           'd0.loss_bbox', 'd0.loss_iou'}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    # tensor inputs (RGB only) give the same losses as the paired dict in eval mode
    model.eval()
    with torch.no_grad():
        out_pair = model._forward(data['inputs'], data['data_samples'])
        out_rgb = model._forward(data['inputs']['img'], data['data_samples'])
        out_no_ir = model._forward(dict(img=data['inputs']['img'],
                                        img_ir=torch.zeros_like(data['inputs']['img_ir'])),
                                   data['data_samples'])
    for a, b, c in zip(out_pair, out_rgb, out_no_ir):
        assert torch.equal(a, b) and torch.equal(a, c)  # the infrared image is ignored
    cls = model.extract_cls_features(data['inputs']['img'])
    assert cls.shape == (2, TINY)

    test_data = model.data_preprocessor(_batch(cfg, 'test'), False)
    with torch.no_grad():
        results = model.predict(test_data['inputs'], test_data['data_samples'])
    for result in results:
        pred = result.pred_instances
        assert pred.bboxes.shape == (10, 4) and pred.scores.shape == (10, )
        assert (pred.labels == 0).all() and ((pred.scores >= 0) & (pred.scores <= 1)).all()
        h, w = result.ori_shape
        assert (pred.bboxes[:, 0::2] <= w + 1e-3).all() and (pred.bboxes[:, 1::2] <= h + 1e-3).all()
        assert (h, w) == (1024, 1280)


def test_stage_switches_need_fusion():
    from mmdet.registry import MODELS
    cfg = Config.fromfile(SMALL_STAGE0)
    with pytest.raises(ValueError, match='fusion'):
        MODELS.build(dict(cfg.model, freeze_detector=True))
    with pytest.raises(ValueError, match='output its CLS'):
        MODELS.build(dict(cfg.model, backbone=dict(cfg.model.backbone, output_cls_token=False)))


# ----------------------------------------------------------------------------- stage 2

def test_stage2_checkpoint_round_trip_and_identity_start(llvip_infos, stage0, tmp_path):
    cfg0, model0, ckpt, _ = stage0
    cfg2 = _stage2_cfg(llvip_infos, stage0)
    torch.manual_seed(1)
    model2 = _build(cfg2)  # init_weights loads the stage-0 checkpoint after DETR's re-init
    state0, state2 = model0.state_dict(), model2.state_dict()
    detector_keys = [k for k in state2 if not k.startswith(('fusion.', 'align_loss.'))]
    assert set(detector_keys) == set(state0)
    for key in detector_keys:
        assert torch.equal(state0[key], state2[key]), key
    # the same through the runner's route (load_from -> load_checkpoint, non-strict)
    model2b = _build(_stage2_cfg(llvip_infos, stage0, init_cfg=None))
    assert not torch.equal(model2b.encoder.layers[0].ffn.layers[1].weight,
                           state0['encoder.layers.0.ffn.layers.1.weight'])
    load_checkpoint(model2b, ckpt, map_location='cpu', strict=False, logger='silent')
    for key in detector_keys:
        assert torch.equal(model2b.state_dict()[key], state0[key]), key

    # with the zero-initialised fusion output the stage-2 model starts as the stage-0 model
    data = model2.data_preprocessor(_batch(cfg2, 'test'), False)
    model0.eval()
    model2.eval()
    with torch.no_grad():
        out0 = model0._forward(data['inputs']['img'], data['data_samples'])
        out2 = model2._forward(data['inputs'], data['data_samples'])
        results = model2.predict(data['inputs'], data['data_samples'])
    for a, b in zip(out0, out2):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert results[0].pred_instances.bboxes.shape == (10, 4)

    # a stage-2 checkpoint carries the fusion weights and the prior
    torch.nn.init.normal_(model2.fusion.fusion_mlp[-1].weight)
    path = str(tmp_path / 'stage2.pth')
    torch.save({'state_dict': model2.state_dict()}, path)
    model2c = _build(_stage2_cfg(llvip_infos, stage0, init_cfg=None))
    load_checkpoint(model2c, path, map_location='cpu', strict=True, logger='silent')
    for key, value in model2.state_dict().items():
        assert torch.equal(model2c.state_dict()[key], value), key


def test_stage2_training_keeps_detector_bit_identical(llvip_infos, stage0):
    cfg2 = _stage2_cfg(llvip_infos, stage0)
    torch.manual_seed(2)
    model = _build(cfg2)
    model.train()
    frozen = [name for name, module in model.detector_modules()]
    assert set(frozen) == {'backbone', 'neck', 'positional_encoding', 'encoder', 'decoder',
                           'query_embedding', 'bbox_head'}
    for name, module in model.named_modules():
        if name.startswith(tuple(frozen)):
            assert not module.training, name
        elif name.startswith('fusion'):
            assert module.training, name
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith('fusion.') for n in trainable)
    assert len(trainable) == len(list(model.fusion.parameters()))

    before = _detector_state(model)
    assert any('running_mean' in k for k in before)  # the BN buffers are checked too
    fusion_before = {n: p.detach().clone() for n, p in model.fusion.named_parameters()}
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(cfg2.optim_wrapper))
    batch = _batch(cfg2)
    for _ in range(3):
        log_vars = model.train_step(batch, optim_wrapper)
    assert {'loss', 'loss_align', 'loss_cls', 'loss_bbox', 'loss_iou'} <= set(log_vars)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in log_vars.values())
    after = _detector_state(model)
    for key, value in before.items():
        assert torch.equal(value, after[key]), f'{key} changed in stage-2 training'
    assert all(p.grad is None for p in model.detector_parameters())
    changed = [n for n, p in model.fusion.named_parameters()
               if not torch.equal(p, fusion_before[n])]
    assert 'fusion_mlp.3.weight' in changed and len(changed) > len(fusion_before) // 2

    # the loss is -log P_normal(fused CLS) + 0.5 * L_det
    model.eval()
    data = model.data_preprocessor(batch, True)
    with torch.no_grad():
        losses = model.loss(data['inputs'], data['data_samples'])
        fused_cls = model.extract_fused_cls_features(data['inputs'])
        stage0_model = stage0[1].eval()
        det = stage0_model.bbox_head.loss(
            **stage0_model.forward_transformer(model.extract_feat(data['inputs']),
                                               data['data_samples']),
            batch_data_samples=data['data_samples'])
    prior = GaussianMixturePrior.from_file(cfg2.model.align_loss.gmm_file)
    torch.testing.assert_close(losses['loss_align'], -prior.log_prob(fused_cls).mean().float())
    torch.testing.assert_close(losses['loss_bbox'], 0.5 * det['loss_bbox'])


def test_stage2_end_to_end_ablation_trains_detector(llvip_infos, stage0):
    """The unfrozen ablation: the same check as above fails, so it can detect changes."""
    cfg2 = _stage2_cfg(llvip_infos, stage0, freeze_detector=False)
    torch.manual_seed(3)
    model = _build(cfg2)
    model.train()
    assert all(p.requires_grad for p in model.parameters())
    assert model.backbone.training and model.neck.training
    before = _detector_state(model)
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(cfg2.optim_wrapper))
    model.train_step(_batch(cfg2), optim_wrapper)
    after = _detector_state(model)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.startswith('backbone.') for k in changed)
    assert any('running_mean' in k for k in changed)


def test_stage2_needs_infrared(llvip_infos, stage0):
    model = _build(_stage2_cfg(llvip_infos, stage0, init_cfg=None))
    with pytest.raises(ValueError, match='img_ir'):
        model.extract_feat(torch.zeros(1, 3, 64, 64))


# ----------------------------------------------------------------------------- configs

def _tiny_overrides(cfg, gmm_file):
    """Shrink a DAMF config's model to the small width (for a fast build)."""
    layer = dict(embed_dims=TINY, num_heads=4)
    ffn = dict(embed_dims=TINY, feedforward_channels=128)
    overrides = {
        'backbone.embed_dims': TINY, 'backbone.num_layers': 2, 'backbone.num_heads': 4,
        'backbone.init_cfg': None, 'neck.in_channels': [TINY], 'neck.out_channels': TINY,
        'encoder.num_layers': 1, 'encoder.layer_cfg.self_attn_cfg': layer,
        'encoder.layer_cfg.ffn_cfg': ffn, 'decoder.num_layers': 1,
        'decoder.layer_cfg.self_attn_cfg': layer, 'decoder.layer_cfg.cross_attn_cfg': layer,
        'decoder.layer_cfg.ffn_cfg': ffn, 'positional_encoding.num_feats': TINY // 2,
        'bbox_head.embed_dims': TINY,
    }
    if cfg.model.get('fusion') is not None:
        overrides['fusion.embed_dims'] = TINY
    if cfg.model.get('align_loss') is not None:
        overrides['align_loss.gmm_file'] = gmm_file
    _set_model(cfg, overrides)


DAMF_CONFIGS = sorted(glob.glob(osp.join(CFG_DIR, '*.py')))


def test_config_list():
    names = {osp.basename(p) for p in DAMF_CONFIGS}
    for dataset in ('llvip', 'flir-aligned', 'dronevehicle'):
        assert f'damf-stage0_vit-b16-detr_8xb2-50e_{dataset}.py' in names
        assert f'damf-stage2_vit-b16-detr_8xb2-12e_{dataset}.py' in names


@pytest.mark.parametrize('path', DAMF_CONFIGS, ids=osp.basename)
def test_config_builds(path, stage0):
    from mmcv.transforms import Compose
    cfg = Config.fromfile(path)
    assert cfg.model.type == 'DAMFDetector'
    _tiny_overrides(cfg, stage0[3])
    model = _build(cfg)
    classes = cfg.train_dataloader.dataset.metainfo['classes']
    assert model.bbox_head.num_classes == len(classes)
    if model.with_fusion:
        trainable = {n.split('.')[0] for n, p in model.named_parameters() if p.requires_grad}
        with_parameters = {n for n, m in model.named_children() if list(m.parameters())}
        assert trainable == ({'fusion'} if model.freeze_detector else with_parameters)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        Compose(copy.deepcopy(cfg[key].dataset.pipeline))


def test_vit_b_stage2_config_parameters():
    """The real LLVIP stage-2 models: ViT-B/16 + DETR frozen, only the fusion trains (14.2M by
    default, 13.0M with the narrower gate of the gate-r4 config)."""
    from mmdet.registry import MODELS
    cfg = Config.fromfile(osp.join(CFG_DIR, 'damf-stage2_vit-b16-detr_8xb2-12e_llvip.py'))
    cfg.model.align_loss.gmm_file = None
    model = MODELS.build(cfg.model)
    assert model.backbone.patch_embed.projection.kernel_size == (16, 16)
    assert len(model.backbone.layers) == 12 and model.backbone.cls_token.shape[-1] == 768
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 14_174_208
    total = sum(p.numel() for p in model.parameters())
    assert total == 118_523_654  # ViT-B 86.6M, neck 0.2M, DETR 17.5M, fusion 14.2M
    narrow = Config.fromfile(
        osp.join(CFG_DIR, 'damf-stage2-gate-r4_vit-b16-detr_8xb2-12e_llvip.py')).model
    narrow.align_loss.gmm_file = None
    assert narrow.fusion.gate_reduction == 4
    fusion = MODELS.build(narrow.fusion)
    assert sum(p.numel() for p in fusion.parameters()) == 12_994_176


# ----------------------------------------------------------------------------- NLL tool

def test_alignment_nll_tool(llvip_infos, stage0, tmp_path):
    """tools/analysis_tools/damf_alignment_nll.py on a stage-2 checkpoint made here."""
    tool = load_tool('tools/analysis_tools/damf_alignment_nll.py', 'damf_alignment_nll_tool')

    _, _, ckpt0, gmm = stage0
    torch.manual_seed(4)
    model = _build(_stage2_cfg(llvip_infos, stage0))  # stage-0 weights + a fusion module
    torch.nn.init.normal_(model.fusion.fusion_mlp[-1].weight, std=0.02)
    ckpt = str(tmp_path / 'epoch_3.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {'epoch': 3}}, ckpt)
    config = tmp_path / 'stage2.py'
    config.write_text(
        f'_base_ = [{SMALL_STAGE2!r}]\n'
        f'load_from = {ckpt0!r}\n'
        "model = dict(neck=dict(norm_cfg=dict(_delete_=True, type='BN')),\n"
        f'             align_loss=dict(gmm_file={gmm!r}))\n'
        f'val_dataloader = dict(dataset=dict(data_prefix=dict(img={LLVIP_ROOT!r}, '
        f'img_ir={LLVIP_ROOT!r})))\n')
    out = str(tmp_path / 'nll.json')
    record = tool.main([
        str(config), '--checkpoints', ckpt, '--kinds', 'clean', 'fog', '--out', out,
        '--ann-files', osp.join(llvip_infos, 'llvip_infos_test.json')])
    assert [s['epoch'] for s in record['states']] == [0, 3]
    assert record['seen_kinds'] == ['overexposure'] and len(record['images']) == 5
    for kind in ('clean', 'fog'):
        res = record['nll'][kind]
        # the encoder is frozen: the RGB-only values agree between the states, and at epoch 0
        # the fusion is the identity, so fused == RGB-only there (not at epoch 3)
        assert res['rgb_only'][1] == pytest.approx(res['rgb_only'][0], rel=1e-6)
        assert res['fused'][0] == pytest.approx(res['rgb_only'][0], rel=1e-5)
        assert res['fused'][1] != pytest.approx(res['rgb_only'][1], rel=1e-5)
    assert record['nll']['fog']['rgb_only_mean'][0] > record['nll']['clean']['rgb_only_mean'][0]
    assert osp.isfile(out)
