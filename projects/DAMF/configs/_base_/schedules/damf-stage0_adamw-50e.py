# DAMF stage 0 schedule (our choice; the paper gives none): mmdet's DETR optimiser (AdamW,
# lr 1e-4, weight decay 1e-4, backbone lr x 0.1, gradient clipping at 0.1), 50 epochs with the lr
# divided by 10 after epoch 40, for 8 GPUs x 2 images (DETR's base batch 16).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1, decay_mult=1.0)}))
max_epochs = 50
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[40], gamma=0.1)
]
auto_scale_lr = dict(base_batch_size=16)
custom_hooks = [dict(type='RandomStateHook')]  # bit-exact --resume (mmfusion.engine.hooks)
