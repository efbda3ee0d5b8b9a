# DAMF data pipelines (DETR-style, our choice): both images of a pair resized to fit 640x512
# (W x H, aspect kept: LLVIP's 1280x1024 halves, FLIR-aligned and DroneVehicle are 640x512
# already), random horizontal flip in training, no square padding (the batch is padded to a
# multiple of the ViT's 16-pixel patches by the data preprocessor). The names are prefixed
# `damf_` so this file sits beside a dataset base (which defines `train_pipeline`) in one
# `_base_` list; configs put them into their dataloaders.
damf_img_scale = (640, 512)  # (w, h)
damf_train_pipeline = [
    dict(type='LoadPairedImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PairedResize', scale=damf_img_scale, keep_ratio=True),
    dict(type='PairedRandomFlip', prob=0.5),
    dict(type='PackPairedDetInputs'),
]
damf_test_pipeline = [
    dict(type='LoadPairedImageFromFile'),
    dict(type='PairedResize', scale=damf_img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackPairedDetInputs',
         meta_keys=('img_id', 'img_path', 'img_ir_path', 'ori_shape', 'img_shape',
                    'scale_factor')),
]
