# FLIR-aligned (FLIR ADAS thermal, aligned subset of Zhang et al., ICIP 2020), RGB + thermal
# detection of person/bicycle/car, as registered pairs for mmfusion's paired detectors
# (method-neutral: plain resize/flip training pipeline; methods wrap or replace
# `train_pipeline`, e.g. with PairedMosaic).
#
# Data preparation (see mmfusion/converters/flir.py; `dog` boxes are dropped):
#   data/FLIR_aligned/align/{JPEGImages,Annotations,align_train.txt,align_validation.txt}
#   python tools/create_data.py flir --root-path data/FLIR_aligned --out-dir data/flir_infos
# Boxes are in thermal pixels; LoadPairedImageFromFile requires the RGB frame to have the thermal
# frame's size (it raises, naming both files, for a pair that does not).
# Validation and test use the `align_validation.txt` split.
dataset_type = 'PairedCocoDataset'
data_root = 'data/'
# the json file names are relative to the release root
data_prefix = dict(img='FLIR_aligned/', img_ir='FLIR_aligned/')
train_ann_file = 'flir_infos/flir_infos_train.json'
test_ann_file = 'flir_infos/flir_infos_val.json'
metainfo = dict(
    classes=('person', 'bicycle', 'car'),
    palette=[(220, 20, 60), (119, 11, 32), (0, 0, 142)])
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
