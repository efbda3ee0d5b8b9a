# Official NYUDv2 schedule of GeminiFusion (main.py, utils/optimizer.py; TokenFusion's recipe):
#   3 GPUs x batch 2, 3 stages x 100 epochs; 795 frames / 6 = 132 iterations per epoch
#   (DistributedSampler, drop_last), so 13200 iterations per stage, 39600 in all.
#   Each stage starts a fresh PolyWarmupAdamW (AdamW, betas (0.9, 0.999), eps 1e-8, weight decay
#   0.01) with lr 6e-5, 3e-5, 1.5e-5; its lr at stage step g is
#     lr_s * (1 - (1 - g / 1500) * (1 - 1e-6))   for g < 1500 (linear warm-up from 1e-6 lr_s)
#     lr_s * (1 - g / 40000)                      after (poly, power 1, max_iter 40000, so a
#                                                  stage ends at 0.67 lr_s)
#   Parameter groups: encoder (lr, wd 0.01), encoder norms (lr, wd 0), decoder (10 lr, wd 0.01);
#   the ensemble weights `alpha` are in no group (never trained: ensemble = 0.5 / 0.5).
#   --freeze-bn (default True): every BatchNorm in eval mode (the head's BN normalises with its
#   initial running statistics; its affine weights train).
# Here: the same numbers with mmengine's stock LinearLR (chained: each scheduler multiplies the
# lr it finds at its begin), two per stage; tests/test_models/test_gemini_segmentation.py checks
# the resulting lr against the official formula at every iteration. OptimizerResetHook clears
# the AdamW state (moments, step count) at each stage start, NormEvalHook keeps the BatchNorm
# layers in eval mode, and `ensemble_alpha` gets lr 0 (stays at its initial softmax 0.5 / 0.5).
# The learned-ensemble variant (alpha and the head's BN trained): the paper configs'
# `geminifusion-learned-ensemble_*` sibling.
stage_iters = 13200
warmup_iters = 1500
official_max_iter = 40000
poly_start = 1 - warmup_iters / official_max_iter  # 0.9625
poly_end = 1 - (stage_iters - 1) / official_max_iter  # 0.670025, lr factor at a stage's end
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01),
    paramwise_cfg=dict(
        # norm_decay_mult reaches every LayerNorm of the backbone (incl. the stage norms, whose
        # names hold no 'norm'); custom keys take precedence, so the decoder's BN keeps wd 0.01
        # as officially.
        norm_decay_mult=0.0,
        custom_keys={
            'decode_head': dict(lr_mult=10.0),
            'ensemble_alpha': dict(lr_mult=0.0, decay_mult=0.0),  # official: not optimised
        }))
param_scheduler = []
for _stage in range(3):
    _begin = _stage * stage_iters
    # at a stage's begin the lr is lr_0 (stage 0) or lr_{s-1} * poly_end; restart at
    # 1e-6 * lr_s (lr_s = lr_{s-1} / 2) and warm up to lr_s
    _to_base = 1.0 if _stage == 0 else 0.5 / poly_end
    param_scheduler += [
        dict(type='LinearLR', start_factor=1e-6 * _to_base, end_factor=_to_base,
             begin=_begin, end=_begin + warmup_iters, by_epoch=False),
        dict(type='LinearLR', start_factor=poly_start, end_factor=poly_end,
             begin=_begin + warmup_iters, end=_begin + stage_iters, by_epoch=False),
    ]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=3 * stage_iters, val_interval=660)
custom_hooks = [
    # official main.py: a new PolyWarmupAdamW at the start of stages 2 and 3
    dict(type='OptimizerResetHook', reset_iters=[stage_iters, 2 * stage_iters]),
    # official --freeze-bn True: BatchNorm layers in eval mode for the whole training
    dict(type='NormEvalHook', begin_iter=0),
    dict(type='RandomStateHook'),  # bit-exact --resume (mmfusion.engine.hooks)
]
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=660, max_keep_ckpts=1,
        save_best='ensemble/mIoU', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
# official: 3 GPUs x 2 images
auto_scale_lr = dict(enable=False, base_batch_size=6)
