# DroneVehicle (Sun et al., IEEE TCSVT 2022), drone-view RGB + infrared vehicle detection, as
# registered pairs for mmfusion's paired detectors, with the *infrared* label set (the boxes
# drawn on the infrared images, `{X}labelr`; the converter's default) as horizontal boxes
# (the converter's `bbox`: min/max of each polygon, clipped to the 640x512 frame).
# Same layout as the other paired dataset bases of this folder. Classes:
# mmfusion/converters/dronevehicle.py CLASSES.
#
# Data preparation (crops the 100-pixel white border, writes the 640x512 pairs):
#   data/DroneVehicle/{train,val,test}/{X}img, {X}imgr, {X}label, {X}labelr   (release)
#   python tools/create_data.py dronevehicle --root-path data/DroneVehicle \
#       --out-dir data/dronevehicle_infos
# Validation uses the `val` split, test the `test` split.
dataset_type = 'PairedCocoDataset'
data_root = '{{ fileDirname }}/../../../../../data/dronevehicle_infos/'
data_prefix = dict(img='', img_ir='')  # the json names are relative to the converter's out_dir
train_ann_file = 'dronevehicle_infos_train.json'
val_ann_file = 'dronevehicle_infos_val.json'
test_ann_file = 'dronevehicle_infos_test.json'
metainfo = dict(
    classes=('car', 'truck', 'bus', 'van', 'freight_car'),
    palette=[(0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (119, 11, 32)])
img_scale = (640, 512)  # (w, h): the frames' own size
backend_args = None

train_pipeline = [
    dict(type='LoadPairedImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PairedResize', scale=img_scale, keep_ratio=True),
    dict(type='PairedRandomFlip', prob=0.5),
    dict(type='PackPairedDetInputs'),
]
test_pipeline = [
    dict(type='LoadPairedImageFromFile', backend_args=backend_args),
    dict(type='PairedResize', scale=img_scale, keep_ratio=True),
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
        ann_file=val_ann_file,
        data_prefix=data_prefix,
        metainfo=metainfo,
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = dict(
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

val_evaluator = dict(
    type='CocoMetric', ann_file=data_root + val_ann_file, metric='bbox',
    backend_args=backend_args)
test_evaluator = dict(
    type='CocoMetric', ann_file=data_root + test_ann_file, metric='bbox',
    backend_args=backend_args)
