# Small Fusion-Mamba of the same architecture (two CSP-Darknet streams, FMB = SSCS + chained
# DSSF at P3/P4/P5, summed into the YOLOX PAFPN neck and head), sized to train on 2 CPU cores:
# depth x0.33, width x0.125 (P3/P4/P5 of 32/64/128 channels), 2 DSSF blocks per FMB with state
# size 4 and no inner expansion, 160x128 input (LLVIP frames scaled by 1/8).
#
# Used for the documented overfit run on the 6 LLVIP pairs bundled with the tests (train = test
# = all 6; docs/runs/fusion_mamba_llvip_overfit/run.sh writes the combined annotation file
# this config reads and runs tools/train.py and tools/test.py). It measures whether the model
# can fit, not accuracy: no mosaic (6 images), AdamW instead of the paper's SGD (it fits the few
# images in fewer iterations), no EMA, and every box ranked by the COCO metric (score_thr 0).
_base_ = ['./fusion-mamba_yolox-l_1xb8-200e_llvip.py']

deepen_factor = 0.33
widen_factor = 0.125
model = dict(
    backbone=dict(
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        fusion_cfg=dict(num_dssf_blocks=2, d_state=4, expand=1)),
    neck=dict(in_channels=[32, 64, 128], out_channels=32, num_csp_blocks=1),
    bbox_head=dict(in_channels=32, feat_channels=32),
    test_cfg=dict(score_thr=0.0))

# ---- data: the bundled LLVIP sample, all 6 pairs for training and evaluation -------------------
data_root = ''  # the paths below are absolute: the repository root found from this file
repo_root = '{{ fileDirname }}/../../../'
sample_root = repo_root + 'tests/data/llvip/LLVIP/'
ann_file = repo_root + 'work_dirs/fusion_mamba_llvip_overfit/data/llvip_sample_infos_all.json'
img_scale = (160, 128)  # (w, h): 1280x1024 / 8
train_pipeline = [
    dict(type='LoadPairedImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PairedResize', scale=img_scale, keep_ratio=True),
    dict(type='PairedRandomFlip', prob=0.5),
    dict(type='PairedPad', size_divisor=32, pad_val=dict(img=(114, 114, 114))),
    dict(type='PackPairedDetInputs'),
]
test_pipeline = [
    dict(type='LoadPairedImageFromFile'),
    dict(type='PairedResize', scale=img_scale, keep_ratio=True),
    dict(type='PairedPad', size_divisor=32, pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackPairedDetInputs',
         meta_keys=('img_id', 'img_path', 'img_ir_path', 'ori_shape', 'img_shape',
                    'scale_factor')),
]
sample_dataset = dict(
    type='PairedCocoDataset',
    data_root=data_root,
    ann_file=ann_file,
    data_prefix=dict(img=sample_root, img_ir=sample_root),
    metainfo=dict(classes=('person', )))
train_dataloader = dict(
    batch_size=6,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(_delete_=True, pipeline=train_pipeline, **sample_dataset))
val_dataloader = dict(
    batch_size=6,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(_delete_=True, test_mode=True, pipeline=test_pipeline, **sample_dataset))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=ann_file)
test_evaluator = val_evaluator

# ---- schedule: 150 epochs of one iteration (batch 6) ------------------------------------------
max_epochs = 150
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
optim_wrapper = dict(
    # every parameter trained, no decay on norms and biases (not the official groups)
    constructor='DefaultOptimWrapperConstructor',
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.),
    optimizer=dict(_delete_=True, type='AdamW', lr=0.003, weight_decay=0.05),
    accumulative_counts=1)  # one real batch per step
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-4, begin=5, end=max_epochs,
         T_max=max_epochs - 5, by_epoch=True, convert_to_iter_based=True),
]
custom_hooks = [dict(type='RandomStateHook')]  # no mosaic to switch off, no EMA
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(_delete_=True, type='CheckpointHook', interval=max_epochs, max_keep_ckpts=1))
