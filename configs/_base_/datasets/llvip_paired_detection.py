# LLVIP (Jia et al., ICCV Workshops 2021), visible + infrared pedestrian detection, as registered
# pairs for mmfusion's paired detectors (method-neutral: plain resize/flip training pipeline;
# methods wrap or replace `train_pipeline`, e.g. with PairedMosaic).
#
# Data preparation (the annotation json files carry both image names; see
# mmfusion/converters/llvip.py):
#   data/LLVIP/{visible,infrared}/{train,test}/*.jpg, data/LLVIP/Annotations/*.xml  (release)
#   python tools/create_data.py llvip --root-path data/LLVIP --out-dir data/llvip_infos
# LLVIP has no validation split: validation and test both use the official test split.
dataset_type = 'PairedCocoDataset'
data_root = '{{ fileDirname }}/../../../data/'
# the json file names are relative to the release root
data_prefix = dict(img='LLVIP/', img_ir='LLVIP/')
train_ann_file = 'llvip_infos/llvip_infos_train.json'
test_ann_file = 'llvip_infos/llvip_infos_test.json'
metainfo = dict(classes=('person', ), palette=[(220, 20, 60)])
img_scale = (640, 640)  # (w, h)
backend_args = None

train_pipeline = [
    dict(type='LoadPairedImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PairedResize', scale=img_scale, keep_ratio=True),
    dict(type='PairedRandomFlip', prob=0.5),
    dict(type='PairedPad', pad_to_square=True, pad_val=dict(img=(114, 114, 114))),
    dict(type='PackPairedDetInputs'),
]
test_pipeline = [
    dict(type='LoadPairedImageFromFile', backend_args=backend_args),
    dict(type='PairedResize', scale=img_scale, keep_ratio=True),
    dict(type='PairedPad', pad_to_square=True, pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackPairedDetInputs',
         meta_keys=('img_id', 'img_path', 'img_ir_path', 'ori_shape', 'img_shape',
                    'scale_factor')),
]

train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=train_ann_file,
        data_prefix=data_prefix,
        metainfo=metainfo,
        filter_cfg=dict(filter_empty_gt=False, min_size=1),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=test_ann_file,
        data_prefix=data_prefix,
        metainfo=metainfo,
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

# COCO box AP: bbox_mAP (mAP50:95), bbox_mAP_50, bbox_mAP_75 (and small/medium/large)
val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + test_ann_file,
    metric='bbox',
    backend_args=backend_args)
test_evaluator = val_evaluator
