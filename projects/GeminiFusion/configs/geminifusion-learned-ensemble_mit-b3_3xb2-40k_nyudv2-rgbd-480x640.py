# Variant of the MiT-B3 paper config with a learned ensemble: the ensemble weights alpha
# (softmax, initialised to 0.5 / 0.5) are trained, as the paper (after TokenFusion) describes,
# and the head's BatchNorm trains with batch statistics as in mmseg's SegFormer configs. The
# official code does neither (alpha is in no optimizer group, --freeze-bn is on by default),
# which is what ./geminifusion_mit-b3_3xb2-40k_nyudv2-rgbd-480x640.py reproduces. The fresh
# AdamW at each stage start is kept.
_base_ = './geminifusion_mit-b3_3xb2-40k_nyudv2-rgbd-480x640.py'
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'ensemble_alpha': dict(lr_mult=1.0, decay_mult=1.0)}))
custom_hooks = [
    dict(type='OptimizerResetHook', reset_iters=[_base_.stage_iters, 2 * _base_.stage_iters]),
    dict(type='RandomStateHook'),
]
