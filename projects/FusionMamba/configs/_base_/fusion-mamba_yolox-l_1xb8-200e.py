# Fusion-Mamba (Dong et al., arXiv 2404.09146, IEEE TMM 2025): model and training recipe shared by
# the dataset configs of this folder, with mmdet's default runtime. A dataset config adds a paired
# dataset base (configs/_base_/datasets/*_paired_detection.py), its number of classes, and wraps
# its training set into `mosaic_dataset` (MultiImageMixDataset with `mosaic_train_pipeline`; see
# fusion-mamba_yolox-l_1xb8-200e_llvip.py).
#
# Sources of the values:
#   [yaml] official model, github.com/EhanDong/Fusion-Mamba
#          models/transformer/yolov5l-fusionmamba.yaml
#          (YOLOv5-l two-stream backbone, depth/width multiple 1.0, FMB = channel swapping + 8
#          DSSF blocks at P3/P4/P5, enhanced features feed the next stage, sum to the neck)
#   [hyp]  official data/hyp.scratch.yaml (SGD lr0 0.01, momentum 0.937, weight decay 5e-4,
#          3 warm-up epochs from momentum 0.8, cosine decay to lr0 * lrf = 0.002, mosaic 1.0,
#          HSV 0.015/0.7/0.4, fliplr 0.5, flipud 0.3, degrees 0.3, translate 0.1, scale 0.5,
#          shear 0.1; its mixup 0.2 is read only by the single-modality loader: the RGB-IR
#          loader of utils/datasets.py has MixUp commented out, so there is none here)
#   [data] official utils/datasets.py, LoadMultiModalImagesAndLabels / load_mosaic_RGB_IR:
#          4-image mosaic on a 2x canvas, then random_perspective_rgb_ir (one affine matrix for
#          both images, about the canvas centre, border -320: a 640x640 window)
#   [train] official train.py defaults (--epochs 200, --batch-size 8, --img-size 640 640, SGD with
#          Nesterov, nominal batch 64 by gradient accumulation, ModelEMA, max(3 epochs, 1000
#          iterations) of warm-up; optimizer groups: BatchNorm weights (no decay), every other
#          module .weight (decay), every module .bias (no decay); parameters that are no
#          module's .weight/.bias, i.e. the SS2D scan parameters, are not optimised)
#   [test] official test.py defaults (--conf-thres 0.001, --iou-thres 0.5)
# The paper (Sec. 4) trains at 640x640 with SGD; where its text and the official code differ
# the official code's values are used here.
#
# Deviations (see projects/FusionMamba/README.md): mmdet's YOLOX neck/head (anchor-free,
# decoupled, SimOTA) instead of YOLOv5's anchor head; the boxes after the affine warp are kept
# by mmdet's rules (inside the image, then FilterAnnotations), not YOLOv5's box_candidates.
# Training every parameter (scan parameters included) instead of the official groups:
# ../fusion-mamba-train-all_yolox-l_1xb8-200e_llvip.py.
_base_ = 'mmdet::_base_/default_runtime.py'
custom_imports = dict(imports=['mmfusion.det'], allow_failed_imports=False)

train_img_scale = (640, 640)  # (w, h) [train]; the dataset base sets the test size
deepen_factor = 1.0  # YOLOv5-l [yaml]
widen_factor = 1.0
norm_cfg = dict(type='BN', momentum=0.03, eps=0.001)  # YOLOv5's BatchNorm settings
act_cfg = dict(type='Swish')  # SiLU, as YOLOv5

model = dict(
    type='PairedSingleStageDetector',
    data_preprocessor=dict(
        type='PairedDetDataPreprocessor',
        # YOLOv5 input: RGB order, pixels / 255, for both modalities
        mean=[0., 0., 0.],
        std=[255., 255., 255.],
        ir_mean=[0., 0., 0.],
        ir_std=[255., 255., 255.],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        type='DualStreamCSPDarknet',
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        out_indices=(2, 3, 4),  # P3/8, P4/16, P5/32
        fusion_cfg=dict(type='FusionMambaBlock', num_dssf_blocks=8),  # [yaml] CrossLayer(C, 8)
        fuse_into_streams=True,  # [yaml] stages read the Add2 outputs
        spp_kernal_sizes=(5, 9, 13),  # [yaml] SPP(1024, [5, 9, 13])
        norm_cfg=norm_cfg,
        act_cfg=act_cfg),
    neck=dict(
        type='YOLOXPAFPN',
        in_channels=[256, 512, 1024],
        out_channels=256,
        num_csp_blocks=3,
        upsample_cfg=dict(scale_factor=2, mode='nearest'),
        norm_cfg=norm_cfg,
        act_cfg=act_cfg),
    bbox_head=dict(
        type='YOLOXHead',
        num_classes=1,  # set by the dataset config
        in_channels=256,
        feat_channels=256,
        stacked_convs=2,
        strides=(8, 16, 32),
        norm_cfg=norm_cfg,
        act_cfg=act_cfg,
        loss_cls=dict(
            type='CrossEntropyLoss', use_sigmoid=True, reduction='sum', loss_weight=1.0),
        loss_bbox=dict(
            type='IoULoss', mode='square', eps=1e-16, reduction='sum', loss_weight=5.0),
        loss_obj=dict(
            type='CrossEntropyLoss', use_sigmoid=True, reduction='sum', loss_weight=1.0),
        loss_l1=dict(type='L1Loss', reduction='sum', loss_weight=1.0)),
    train_cfg=dict(assigner=dict(type='SimOTAAssigner', center_radius=2.5)),
    test_cfg=dict(score_thr=0.001, nms=dict(type='nms', iou_threshold=0.5)))  # [test]

# Training pipeline of the MultiImageMixDataset wrapper: the wrapped dataset only loads.
mosaic_loading_pipeline = [
    dict(type='LoadPairedImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
]
mosaic_train_pipeline = [
    dict(type='PairedMosaic', img_scale=train_img_scale, pad_val=114.0),  # [hyp] mosaic 1.0
    # [data] random_perspective_rgb_ir with the [hyp] ranges: rotation +-0.3 deg, scale
    # 0.5 - 1.5, shear +-0.1 deg, translation +-0.1; about the canvas centre, 640x640 window
    dict(
        type='PairedRandomAffine',
        max_rotate_degree=0.3,
        max_translate_ratio=0.1,
        scaling_ratio_range=(0.5, 1.5),
        max_shear_degree=0.1,
        border=(-train_img_scale[0] // 2, -train_img_scale[1] // 2),
        border_val=(114, 114, 114),
        about_center=True),
    # photometric jitter drawn per modality ([hyp] hsv_h/s/v 0.015/0.7/0.4)
    dict(type='YOLOXHSVRandomAug', hue_delta=5, saturation_delta=30, value_delta=30),
    dict(type='InfraredTransform', transforms=[
        dict(type='YOLOXHSVRandomAug', hue_delta=5, saturation_delta=30, value_delta=30)]),
    dict(type='PairedRandomFlip', prob=0.5, direction='horizontal'),  # [hyp] fliplr 0.5
    dict(type='PairedRandomFlip', prob=0.3, direction='vertical'),  # [hyp] flipud 0.3
    # after the mode switch (last epochs without mosaic) these two do the resizing
    dict(type='PairedResize', scale=train_img_scale, keep_ratio=True),
    dict(type='PairedPad', pad_to_square=True, pad_val=dict(img=(114.0, 114.0, 114.0))),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=False),
    dict(type='PackPairedDetInputs'),
]
# The training dataset of a dataset config: its dataset (loading with `mosaic_loading_pipeline`)
# goes into `dataset`.
mosaic_dataset = dict(type='MultiImageMixDataset', pipeline=mosaic_train_pipeline)

# training schedule [train]/[hyp]
max_epochs = 200
num_last_epochs = 15  # YOLOX: last epochs without mosaic, with the L1 box loss
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

base_lr = 0.01
optim_wrapper = dict(
    type='OptimWrapper',
    # [train] the official groups: BatchNorm weights (no decay), module weights (decay 5e-4,
    # LayerNorm weights included), module biases (no decay); the SS2D scan parameters
    # (x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds) are in no group
    constructor='YOLOv5OptimWrapperConstructor',
    optimizer=dict(
        type='SGD', lr=base_lr, momentum=0.937, weight_decay=5e-4, nesterov=True),
    # YOLOv5 accumulates gradients to a nominal batch of 64: 8 steps of batch 8 (weight decay
    # scaled by 8 * 8 / 64 = 1)
    accumulative_counts=8)
param_scheduler = [
    # 3 warm-up epochs [hyp] warmup_epochs, linear per iteration
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=3,
         convert_to_iter_based=True),
    dict(type='LinearMomentum', start_factor=0.8 / 0.937, by_epoch=True, begin=0, end=3,
         convert_to_iter_based=True),  # [hyp] warmup_momentum 0.8 -> 0.937
    # cosine decay to lr0 * lrf = 0.002 [hyp] lrf 0.2
    dict(type='CosineAnnealingLR', eta_min=base_lr * 0.2, begin=3, end=max_epochs,
         T_max=max_epochs - 3, by_epoch=True, convert_to_iter_based=True),
]
# The batch of 8 per step with 8 accumulated steps is the official nominal batch of 64; scale
# by the real per-step batch if you change the number of GPUs.
auto_scale_lr = dict(enable=False, base_batch_size=8)

custom_hooks = [
    dict(type='RandomStateHook'),  # bit-exact --resume (mmfusion.engine.hooks)
    dict(type='YOLOXModeSwitchHook', num_last_epochs=num_last_epochs,
         skip_type_keys=('PairedMosaic', 'PairedRandomAffine'), priority=48),
    dict(type='SyncNormHook', priority=48),
    # YOLOv5's ModelEMA (decay 0.9999 with a ramp): mmdet's ExpMomentumEMA
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0001, update_buffers=True,
         priority=49),
]

default_hooks = dict(
    checkpoint=dict(interval=10, max_keep_ckpts=3, save_best='coco/bbox_mAP_50', rule='greater'))
