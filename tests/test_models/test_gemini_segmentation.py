"""GeminiFusion RGB-D segmentation: two-modality MiT, segmentor, configs, schedule.

Every segmentation config in projects/GeminiFusion/configs/ is built (shrunk to a narrow
one-layer-per-stage MiT-B0 at 120x160 for speed, structure kept) and runs loss and predict on the
real NYUDv2 frames of tests/data/nyudv2. The backbone is checked against mmseg's stock MiT
(same weights from a stock checkpoint, fusion silenced: each stream must equal it).
"""
import copy
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmengine.optim import build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS
from mmengine.runner import Runner
from mmseg.models.backbones import MixVisionTransformer
from mmseg.registry import DATASETS, METRICS, MODELS
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import mmfusion.seg  # noqa: F401  (registers the modules, as custom_imports does)
from mmfusion.models.backbones.gemini_mix_vision_transformer import (GeminiMixVisionTransformer,
                                                                     PerModalityNorm)
from mmfusion.models.fusion.gemini_fusion import GeminiFusionAttention

pytestmark = pytest.mark.default_scope('mmseg')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(REPO, 'projects', 'GeminiFusion', 'configs')
SEG_CONFIGS = sorted(
    p for p in glob.glob(osp.join(CONFIG_DIR, '*.py'))
    if not osp.basename(p).startswith('mvxnet'))
DATA_ROOT = osp.join(REPO, 'tests', 'data', 'nyudv2')
TINY = dict(arch='b0', embed_dims=16, num_layers=[1, 1, 1, 1])
TINY_CHANNELS = [16, 32, 80, 128]


def _real_pair(size=(64, 96)):
    """The two NYUDv2 frames as normalised (2, 3, h, w) RGB and encoded-depth tensors."""
    ds = DATASETS.build(dict(
        type='NYUDv2Dataset', data_root=DATA_ROOT, ann_file='train.txt', pipeline=[
            dict(type='LoadImageFromFile'), dict(type='LoadDepthFromFile'),
            dict(type='EncodeDepth'),
            dict(type='RGBDResize', scale=size[::-1], keep_ratio=False),
            dict(type='LoadAnnotations'), dict(type='PackRGBDSegInputs')]))
    batch = pseudo_collate([ds[0], ds[1]])['inputs']
    rgb = (torch.stack(batch['img']).float() - 120.0) / 60.0
    depth = torch.stack(batch['img_depth']) / 10.0
    return rgb, depth


def _randomise(module, seed=0, scale=0.05):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)


# ----------------------------------------------------------------------------------------------
# backbone
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize('prefix', [None, 'backbone.'])
def test_stock_mit_checkpoint_loads_and_streams_match_stock_without_fusion(tmp_path, prefix):
    torch.manual_seed(0)
    stock = MixVisionTransformer(embed_dims=16, num_layers=[1, 1, 1, 1], num_heads=[1, 2, 5, 8])
    stock.init_weights()
    _randomise(stock)
    state = stock.state_dict()
    if prefix:
        state = {prefix + k: v for k, v in state.items()}
        state['decode_head.conv_seg.weight'] = torch.zeros(1)  # other parts of a segmentor
    torch.save({'state_dict': state}, tmp_path / 'mit.pth')

    init_cfg = dict(type='Pretrained', checkpoint=str(tmp_path / 'mit.pth'))
    if prefix:
        init_cfg['prefix'] = prefix
    gemini = GeminiMixVisionTransformer(**TINY, init_cfg=init_cfg)
    gemini.init_weights()
    # every single-modality norm went into both modality norms
    stock_params = dict(stock.named_parameters())
    for name, module in gemini.named_modules():
        if isinstance(module, PerModalityNorm):
            for i in range(2):
                torch.testing.assert_close(module[i].weight, stock_params[f'{name}.weight'])
                torch.testing.assert_close(module[i].bias, stock_params[f'{name}.bias'])
    rgb, depth = _real_pair()
    stock.eval()
    gemini.eval()
    with torch.no_grad():
        fused_a, fused_b = gemini(rgb, depth)
        for module in gemini.modules():  # silence the fusion: y = x
            if isinstance(module, GeminiFusionAttention):
                for attn in (module.attn_a, module.attn_b):
                    nn.init.zeros_(attn.out_proj.weight)
                    nn.init.zeros_(attn.out_proj.bias)
        outs_a, outs_b = gemini(rgb, depth)
        ref_a, ref_b = stock(rgb), stock(depth)
    for out, ref in zip(outs_a + outs_b, ref_a + ref_b):
        torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    # with its initial weights the fusion does change the features
    assert (fused_a[-1] - ref_a[-1]).abs().max() > 1e-3


def test_every_norm_is_per_modality_and_the_rest_is_shared():
    gemini = GeminiMixVisionTransformer(**TINY)
    stock = MixVisionTransformer(embed_dims=16, num_layers=[1, 1, 1, 1], num_heads=[1, 2, 5, 8])
    parents = {id(m): m for m in gemini.modules()}
    norms = [(n, m) for n, m in gemini.named_modules() if isinstance(m, nn.LayerNorm)]
    per_modality = [m for m in parents.values() if isinstance(m, PerModalityNorm)]
    # patch-embed norm, norm1, norm2, sr norm (stages 0-2), stage norm: 4 + 4 + 4 + 3 + 4
    assert len(per_modality) == 19 and len(norms) == 38
    assert {id(n) for p in per_modality for n in p} == {id(m) for _, m in norms}
    # shared weights: the stock MiT's non-norm parameters, once
    fusion = sum(p.numel() for m in gemini.modules() if isinstance(m, GeminiFusionAttention)
                 for p in m.parameters())
    stock_norm = sum(p.numel() for m in stock.modules() if isinstance(m, nn.LayerNorm)
                     for p in m.parameters())
    total = sum(p.numel() for p in gemini.parameters())
    stock_total = sum(p.numel() for p in stock.parameters())
    assert total == stock_total + stock_norm + fusion


def test_fusion_sits_before_the_output_projection():
    gemini = GeminiMixVisionTransformer(**TINY).eval()
    attn = gemini.layers[0][1][0].attn
    seen = {}
    attn.fusion.register_forward_hook(lambda m, i, o: seen.update(fusion=torch.cat(o)))
    attn.attn.out_proj.register_forward_hook(lambda m, i, o: seen.update(proj_in=i[0]))
    with torch.no_grad():
        gemini(*_real_pair())
    assert torch.equal(seen['fusion'], seen['proj_in'])


def test_arch_presets_and_errors():
    assert GeminiMixVisionTransformer(arch='b5', num_layers=[1, 1, 1, 1]).embed_dims == 64
    b3 = GeminiMixVisionTransformer.arch_settings['b3']
    assert b3 == dict(embed_dims=64, num_layers=[3, 4, 18, 3])
    with pytest.raises(ValueError, match='unknown MiT arch'):
        GeminiMixVisionTransformer(arch='b9')
    with pytest.raises(ValueError, match='missing'):
        GeminiMixVisionTransformer(embed_dims=16)
    with pytest.raises(ValueError, match='same shape'):
        GeminiMixVisionTransformer(**TINY)(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 64))


# ----------------------------------------------------------------------------------------------
# every config: build, loss, predict, evaluate on the real sample
# ----------------------------------------------------------------------------------------------


def _shrunk(path):
    """The config with a tiny backbone and 1/4-size images; everything else as written."""
    cfg = Config.fromfile(path)
    backbone = cfg.model.backbone
    preset = GeminiMixVisionTransformer.arch_settings[backbone.arch]
    widths = backbone.get('embed_dims') or preset['embed_dims']
    assert cfg.model.decode_head.in_channels == [widths * h for h in (1, 2, 5, 8)]
    fusion_cfg = copy.deepcopy(backbone.fusion_cfg)
    cfg.model.backbone.update(TINY, init_cfg=None)  # no download in tests
    cfg.model.decode_head.update(in_channels=TINY_CHANNELS, channels=32,
                                 norm_cfg=dict(type='BN', requires_grad=True))
    crop = cfg.model.data_preprocessor.size
    cfg.model.data_preprocessor.size = (crop[0] // 4, crop[1] // 4)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.data_root = DATA_ROOT
        for step in loader.dataset.pipeline:
            if 'scale' in step:
                step.scale = (step.scale[0] // 4, step.scale[1] // 4)
            if 'crop_size' in step:
                step.crop_size = (step.crop_size[0] // 4, step.crop_size[1] // 4)
    return cfg, fusion_cfg


@pytest.mark.parametrize('path', SEG_CONFIGS, ids=osp.basename)
def test_config_trains_and_predicts_on_real_sample(path):
    cfg, fusion_cfg = _shrunk(path)
    assert cfg.default_scope == 'mmseg' and 'mmfusion.seg' in cfg.custom_imports.imports
    torch.manual_seed(0)
    np.random.seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    fusions = [m for m in model.modules() if isinstance(m, GeminiFusionAttention)]
    assert len(fusions) == 4
    for key, value in fusion_cfg.items():  # the ablation switches reach every block
        assert all(getattr(f, key) == value for f in fusions), key

    train_set = DATASETS.build(cfg.train_dataloader.dataset)
    batch = model.data_preprocessor(pseudo_collate([train_set[0], train_set[1]]), True)
    assert batch['inputs']['img'].shape == batch['inputs']['img_depth'].shape
    assert batch['inputs']['img'].shape[-2:] == cfg.model.data_preprocessor.size
    model.train()
    losses = model(**batch, mode='loss')
    assert {k for k in losses if 'loss' in k} == {
        f'decode_{o}.loss_ce' for o in ('rgb', 'depth', 'ensemble')}
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total) and 3 * 3.0 < total < 3 * 4.5  # ~ln(40) each at init
    total.backward()
    assert model.ensemble_alpha.grad is not None and model.ensemble_alpha.grad.abs().sum() > 0

    val_set = DATASETS.build(cfg.val_dataloader.dataset)
    model.eval()
    with torch.no_grad():
        outputs = model.test_step(pseudo_collate([val_set[1]]))
    for sample in outputs:
        for field in ('pred_sem_seg', 'pred_sem_seg_rgb', 'pred_sem_seg_depth'):
            pred = sample.get(field).data
            assert pred.shape == (1, 480, 640) and pred.max() < 40
        assert sample.seg_logits.data.shape == (40, 480, 640)
    evaluator = METRICS.build(cfg.val_evaluator)
    evaluator.dataset_meta = val_set.metainfo
    evaluator.process(data_batch=None, data_samples=[o.to_dict() for o in outputs])
    metrics = evaluator.evaluate(1)
    assert set(metrics) == {f'{o}/{m}' for o in ('ensemble', 'rgb', 'depth')
                            for m in ('aAcc', 'mIoU', 'mAcc')}


def test_ensemble_is_weighted_sum_and_its_loss_trains_alpha_only():
    cfg, _ = _shrunk(SEG_CONFIGS[0])
    model = MODELS.build(cfg.model)
    with torch.no_grad():
        model.ensemble_alpha.copy_(torch.tensor([0.3, -0.2]))
    rgb, depth = _real_pair(size=(64, 96))
    model.eval()
    logits_rgb, logits_depth, logits_ens = model(dict(img=rgb, img_depth=depth), mode='tensor')
    w = torch.softmax(torch.tensor([0.3, -0.2]), 0)
    torch.testing.assert_close(logits_ens, w[0] * logits_rgb + w[1] * logits_depth)
    model.train()
    train_set = DATASETS.build(cfg.train_dataloader.dataset)
    batch = model.data_preprocessor(pseudo_collate([train_set[0]]), True)
    model(**batch, mode='loss')['decode_ensemble.loss_ce'].backward()
    assert model.ensemble_alpha.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is None for p in model.decode_head.parameters())


def test_segmentor_rejects_slide_mode_and_tensor_inputs():
    cfg, _ = _shrunk(SEG_CONFIGS[0])
    bad = copy.deepcopy(cfg.model)
    bad.test_cfg = dict(mode='slide', crop_size=(64, 64), stride=(32, 32))
    with pytest.raises(ValueError, match="mode='whole'"):
        MODELS.build(bad)
    model = MODELS.build(cfg.model)
    with pytest.raises(ValueError, match='img_depth'):
        model(torch.zeros(1, 3, 64, 64), mode='tensor')


# ----------------------------------------------------------------------------------------------
# optimiser and schedule of the paper configs
# ----------------------------------------------------------------------------------------------

PAPER_CONFIG = osp.join(CONFIG_DIR, 'geminifusion_mit-b3_3xb2-40k_nyudv2-rgbd-480x640.py')
LEARNED_ENSEMBLE_CONFIG = osp.join(
    CONFIG_DIR, 'geminifusion-learned-ensemble_mit-b3_3xb2-40k_nyudv2-rgbd-480x640.py')


def _official_lr(step, base=6e-5):
    """PolyWarmupAdamW of the official utils/optimizer.py over the 3 stages of main.py."""
    stage, g = divmod(step, 13200)
    lr = base * 0.5 ** stage
    if g < 1500:
        return lr * (1 - (1 - g / 1500) * (1 - 1e-6))
    return lr * (1 - g / 40000)


def test_schedule_reproduces_the_official_three_stage_poly():
    cfg = Config.fromfile(PAPER_CONFIG)
    assert cfg.train_cfg.max_iters == 39600
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=cfg.optim_wrapper.optimizer.lr)
    schedulers = [PARAM_SCHEDULERS.build(dict(s, optimizer=optimizer))
                  for s in cfg.param_scheduler]
    ours = np.empty(cfg.train_cfg.max_iters)
    for step in range(cfg.train_cfg.max_iters):
        ours[step] = optimizer.param_groups[0]['lr']  # the lr used by iteration ``step``
        for scheduler in schedulers:
            scheduler.step()
    official = np.array([_official_lr(s) for s in range(len(ours))])
    np.testing.assert_allclose(ours, official, rtol=1e-3, atol=1e-12)


def test_parameter_groups_follow_the_official_ones():
    cfg, _ = _shrunk(PAPER_CONFIG)
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    by_param = {id(p): g for g in wrapper.optimizer.param_groups for p in g['params']}
    names = dict(model.named_parameters())

    def group(name):
        return by_param[id(names[name])]

    base = 6e-5
    # encoder: lr, wd 0.01; every encoder LayerNorm (incl. stage norms): wd 0
    assert group('backbone.layers.0.0.projection.weight')['weight_decay'] == 0.01
    for name in ('backbone.layers.0.0.norm.1.weight', 'backbone.layers.1.2.0.weight',
                 'backbone.layers.0.1.0.attn.norm.0.bias'):
        assert group(name)['weight_decay'] == 0.0 and group(name)['lr'] == base
    # decoder: 10 lr, wd 0.01 (its BN too, as officially)
    for name in ('decode_head.conv_seg.weight', 'decode_head.fusion_conv.bn.weight'):
        assert group(name)['lr'] == pytest.approx(10 * base)
        assert group(name)['weight_decay'] == 0.01
    # the ensemble weights: in no official group (lr 0 here), trained by the learned variant
    assert group('ensemble_alpha')['lr'] == 0.0 and group('ensemble_alpha')['weight_decay'] == 0
    learned, _ = _shrunk(LEARNED_ENSEMBLE_CONFIG)
    model = MODELS.build(learned.model)
    wrapper = build_optim_wrapper(model, learned.optim_wrapper)
    alpha = [g for g in wrapper.optimizer.param_groups
             if any(p is model.ensemble_alpha for p in g['params'])]
    assert len(alpha) == 1 and alpha[0]['lr'] == base and alpha[0]['weight_decay'] == 0.01
    assert [h['type'] for h in learned.custom_hooks] == ['OptimizerResetHook', 'RandomStateHook']


class _StageProbe(Hook):
    """Records, around every training iteration, the optimizer state and the BN modes."""

    priority = 'LOWEST'  # after OptimizerResetHook and NormEvalHook

    def __init__(self):
        self.before, self.after = [], []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = runner.model
        self.before.append((len(runner.optim_wrapper.optimizer.state),
                            [m.training for m in model.modules() if isinstance(m, _BatchNorm)]))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        state = runner.optim_wrapper.optimizer.state.values()
        self.after.append({int(s['step']) for s in state})


def test_three_stages_each_start_a_fresh_adamw(tmp_path):
    """The paper config's stage hooks in a real run of 3 stages x 2 iterations: the AdamW
    state (moments, step count) is empty right after each stage boundary, every BatchNorm runs
    on its running statistics and the ensemble stays 0.5 / 0.5."""
    cfg, _ = _shrunk(PAPER_CONFIG)
    hooks = {h['type']: h for h in cfg.custom_hooks}
    assert hooks['OptimizerResetHook']['reset_iters'] == [13200, 26400]  # stage starts
    assert hooks['NormEvalHook']['begin_iter'] == 0
    probe = _StageProbe()
    torch.manual_seed(0)
    runner = Runner(
        model=cfg.model, work_dir=str(tmp_path),
        train_dataloader=dict(cfg.train_dataloader, batch_size=2, num_workers=0,
                              persistent_workers=False),
        optim_wrapper=cfg.optim_wrapper, param_scheduler=cfg.param_scheduler,
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=6),
        custom_hooks=[dict(hooks['OptimizerResetHook'], reset_iters=[2, 4]),
                      hooks['NormEvalHook'], probe],
        default_hooks=dict(checkpoint=None, logger=None),
        env_cfg=dict(dist_cfg=dict()), default_scope='mmseg')
    runner.train()
    n_params = sum(1 for p in runner.model.parameters() if p.requires_grad)
    sizes = [n for n, _ in probe.before]
    assert sizes[0] == sizes[2] == sizes[4] == 0  # a fresh AdamW at each stage start
    assert sizes[1] == sizes[3] == sizes[5] == n_params
    assert probe.after == [{1}, {2}, {1}, {2}, {1}, {2}]  # step counts restart
    assert all(modes and not any(modes) for _, modes in probe.before)  # BN on running stats
    assert torch.equal(runner.model.ensemble_alpha.detach(), torch.ones(2))
