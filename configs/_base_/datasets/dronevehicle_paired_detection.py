# DroneVehicle (Sun et al., IEEE TCSVT 2022), drone-view RGB + infrared vehicle detection, as
# registered pairs for mmfusion's paired detectors, with the *infrared* label set (the boxes
# drawn on the infrared images, `{X}labelr`; the converter's default) as horizontal boxes
# (the converter's `bbox`: min/max of each polygon, clipped to the 640x512 frame). The LLVIP
# base with DroneVehicle's files, classes and size, no square padding, and its own test split.
# Classes: mmfusion/converters/dronevehicle.py CLASSES.
#
# Data preparation (crops the 100-pixel white border, writes the 640x512 pairs):
#   data/DroneVehicle/{train,val,test}/{X}img, {X}imgr, {X}label, {X}labelr   (release)
#   python tools/create_data.py dronevehicle --root-path data/DroneVehicle \
#       --out-dir data/dronevehicle_infos
# Validation uses the `val` split, test the `test` split.
_base_ = './llvip_paired_detection.py'
data_root = '{{ fileDirname }}/../../../data/dronevehicle_infos/'
data_prefix = dict(img='', img_ir='')  # the json names are relative to the converter's out_dir
train_ann_file = 'dronevehicle_infos_train.json'
val_ann_file = 'dronevehicle_infos_val.json'
test_ann_file = 'dronevehicle_infos_test.json'
metainfo = dict(
    classes=('car', 'truck', 'bus', 'van', 'freight_car'),
    palette=[(0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (119, 11, 32)])
img_scale = (640, 512)  # (w, h): the frames' own size

train_pipeline = [
    dict(type='LoadPairedImageFromFile', backend_args=_base_.backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PairedResize', scale=img_scale, keep_ratio=True),
    dict(type='PairedRandomFlip', prob=0.5),
    dict(type='PackPairedDetInputs'),
]
test_pipeline = [
    dict(type='LoadPairedImageFromFile', backend_args=_base_.backend_args),
    dict(type='PairedResize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackPairedDetInputs',
         meta_keys=('img_id', 'img_path', 'img_ir_path', 'ori_shape', 'img_shape',
                    'scale_factor')),
]

train_dataloader = dict(
    dataset=dict(data_root=data_root, ann_file=train_ann_file, data_prefix=data_prefix,
                 metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(data_root=data_root, ann_file=val_ann_file, data_prefix=data_prefix,
                 metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = dict(
    dataset=dict(data_root=data_root, ann_file=test_ann_file, data_prefix=data_prefix,
                 metainfo=metainfo, pipeline=test_pipeline))
val_evaluator = dict(ann_file=data_root + val_ann_file)
test_evaluator = dict(ann_file=data_root + test_ann_file)
