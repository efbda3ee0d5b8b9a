# Small GeminiFusion for CPU smoke tests and the documented overfit run: MiT-B0 layout with half
# the widths (embed_dims 16: stages 16/32/80/128) and one layer per stage, a 64-channel
# SegFormer head, RGB-D frames downscaled to 240x320, trained and validated on the two NYUDv2
# frames bundled in tests/data/nyudv2 (run from the repository root). Same modules, pipeline
# structure and losses as the paper configs; only sizes and the schedule differ.
# Overfit run: docs/runs/gemini_fusion_nyudv2_overfit/.
_base_ = [
    './_base_/models/geminifusion_mit-b0.py',
    './_base_/datasets/nyudv2_rgbd-480x640.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmfusion.seg'], allow_failed_imports=False)
data_root = '{{ fileDirname }}/../../../tests/data/nyudv2/'
crop_size = (240, 320)
data_preprocessor = dict(size=crop_size)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(arch='b0', embed_dims=16, num_layers=[1, 1, 1, 1], drop_path_rate=0.0),
    decode_head=dict(in_channels=[16, 32, 80, 128], channels=64, norm_cfg=norm_cfg))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthFromFile', depth_scale=5000.0),
    dict(type='EncodeDepth'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(320, 240),
        ratio_range=(1.0, 1.2),
        keep_ratio=True,
        resize_type='RGBDResize'),
    dict(type='RGBDRandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RGBDRandomFlip', prob=0.5),
    dict(type='PackRGBDSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthFromFile', depth_scale=5000.0),
    dict(type='EncodeDepth'),
    dict(type='RGBDResize', scale=(320, 240), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackRGBDSegInputs')
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, ann_file='train.txt', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, ann_file='val.txt', pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, begin=0, end=10, by_epoch=False),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=10, end=300, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=300, val_interval=25)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=25, max_keep_ckpts=1,
        save_best='ensemble/mIoU', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
custom_hooks = [dict(type='RandomStateHook')]  # bit-exact --resume (mmfusion.engine.hooks)
