# DAMF stage 2 schedule (our choice; the paper gives none): only the fusion module's parameters
# have gradients (the detector is frozen by DAMFDetector(freeze_detector=True)); AdamW, lr 1e-4,
# weight decay 1e-4, gradient clipping at 0.1, 12 epochs with the lr divided by 10 after epoch 10,
# for 8 GPUs x 2 images.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2))
max_epochs = 12
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[10], gamma=0.1)
]
auto_scale_lr = dict(base_batch_size=16)
custom_hooks = [dict(type='RandomStateHook')]  # bit-exact --resume (mmfusion.engine.hooks)
