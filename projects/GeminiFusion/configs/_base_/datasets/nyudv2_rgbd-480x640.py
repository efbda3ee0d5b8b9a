# NYUDv2 RGB-D semantic segmentation (40 classes), 795 train / 654 test frames of 640x480, in the
# layout of `python tools/create_data.py nyudv2 --root-path <raw> --out-dir data/nyudv2`.
#
# Augmentation of the official GeminiFusion code (main.py / utils/augmentations_mm.py, taken
# over from TokenFusion), expressed with mmseg's transforms:
#   official RandomResizedCrop((480, 640), scale=(0.5, 2.0)): rescale by r ~ U(0.5, 2.0), random
#     480x640 crop, pad to 480x640 (label 255)   -> RandomResize(ratio_range=(0.5, 2.0)) +
#     RGBDRandomCrop (with mmseg's cat_max_ratio=0.75, not in the official code) + padding in
#     the data preprocessor (size=crop_size)
#   official RandomHorizontalFlip(p=0.5)          -> RGBDRandomFlip(prob=0.5)
#   official RandomColorJitter(p=0.2) and RandomGaussianBlur(p=0.2), RGB only
#                                                  -> mmseg's PhotoMetricDistortion (RGB only)
#   official test: Resize to 480x640 (identity on NYUDv2)
# Depth: the uint16 maps are read in metres and replicated to 3 channels (EncodeDepth); the data
# preprocessor scales them by 1/10 m (see the model base), like the official depth/255.
dataset_type = 'NYUDv2Dataset'
data_root = '{{ fileDirname }}/../../../../../data/nyudv2/'
crop_size = (480, 640)  # (h, w), official input_scale = [480, 640]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthFromFile', depth_scale=5000.0),
    dict(type='EncodeDepth'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(640, 480),
        ratio_range=(0.5, 2.0),
        keep_ratio=True,
        resize_type='RGBDResize'),
    dict(type='RGBDRandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RGBDRandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackRGBDSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthFromFile', depth_scale=5000.0),
    dict(type='EncodeDepth'),
    dict(type='RGBDResize', scale=(640, 480), keep_ratio=True),
    # annotations after the resize: predictions are scored at the original size
    dict(type='LoadAnnotations'),
    dict(type='PackRGBDSegInputs')
]
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='train.txt',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='val.txt',
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# mIoU, mAcc, aAcc of the RGB stream, the depth stream and their ensemble (keys 'rgb/mIoU', ...);
# the paper reports the ensemble.
val_evaluator = dict(type='MultiOutputIoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
