# The official SSLFusion schedule (tools/cfgs/kitti/voxel_rcnn_3class_SSLFusion.yaml and the DENSE
# yaml, OPTIMIZATION): OpenPCDet's `adam_onecycle` = AdamW (decoupled weight decay 0.01, beta2
# 0.99), 80 epochs, a one-cycle schedule with max LR 0.02 reached after 40% of the iterations
# (cosine, starting at max/10 and ending at max/10/1e4), beta1 cycled 0.95 -> 0.85 -> 0.95, and
# gradient-norm clipping at 10. Written with mmengine's OneCycleLR and CosineAnnealingMomentum.
# The official LR is for its total batch (KITTI: 4 per GPU; the DENSE file name says 4 GPUs x 2);
# OpenPCDet does not rescale it, nor does this file (auto_scale_lr off).
lr = 0.02
max_epochs = 80
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=lr, betas=(0.95, 0.99), weight_decay=0.01),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='OneCycleLR', eta_max=lr, pct_start=0.4, div_factor=10, final_div_factor=1e4,
         anneal_strategy='cos', begin=0, end=max_epochs, by_epoch=True,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingMomentum', eta_min=0.85, T_max=int(0.4 * max_epochs), begin=0,
         end=int(0.4 * max_epochs), by_epoch=True, convert_to_iter_based=True),
    dict(type='CosineAnnealingMomentum', eta_min=0.95, T_max=max_epochs - int(0.4 * max_epochs),
         begin=int(0.4 * max_epochs), end=max_epochs, by_epoch=True, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=16)
custom_hooks = [dict(type='RandomStateHook')]  # bit-exact --resume (mmfusion.engine.hooks)
