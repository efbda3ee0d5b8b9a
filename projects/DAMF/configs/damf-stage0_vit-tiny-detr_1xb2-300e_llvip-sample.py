# DAMF stage 0, small: a tiny ViT (width 64, 2 layers, 4 heads, 16-pixel patches) + a tiny DETR
# (width 64, 1 encoder + 2 decoder layers, 10 queries) on LLVIP pairs bundled in tests/data/llvip
# (trained and validated on the 5 pairs of its 'test' split; 010005 of its 'train' split stays
# unseen), images resized to fit 256x256 (256x205 -> 13x16 patches). For tests and
# the documented CPU run (docs/runs/damf_llvip_sample/), not for accuracy. Needs the sample's
# json files:
#   python tools/create_data.py llvip --root-path tests/data/llvip/LLVIP \
#       --out-dir data/llvip_sample_infos
#   python tools/train.py projects/DAMF/configs/damf-stage0_vit-tiny-detr_1xb2-300e_llvip-sample.py
_base_ = [
    '../../../configs/_base_/datasets/llvip_paired_detection.py',
    './_base_/models/damf-stage0_vit-b16-detr.py',
    'mmdet::_base_/default_runtime.py',
]

repo_root = '{{ fileDirname }}/../../../'  # relative paths below start at the repository root
sample_root = repo_root + 'tests/data/llvip/LLVIP/'  # image names in the json are relative to it
sample_infos = repo_root + 'data/llvip_sample_infos/'
img_scale = (256, 256)  # (w, h)
tiny_width, detr_width = 64, 64

model = dict(
    num_queries=10,
    backbone=dict(
        img_size=(208, 256), embed_dims=tiny_width, num_layers=2, num_heads=4,
        drop_path_rate=0.0, init_cfg=None),
    neck=dict(in_channels=[tiny_width], out_channels=detr_width),
    encoder=dict(
        num_layers=1,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=detr_width, num_heads=4),
            ffn_cfg=dict(embed_dims=detr_width, feedforward_channels=128))),
    decoder=dict(
        num_layers=2,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=detr_width, num_heads=4),
            cross_attn_cfg=dict(embed_dims=detr_width, num_heads=4),
            ffn_cfg=dict(embed_dims=detr_width, feedforward_channels=128))),
    positional_encoding=dict(num_feats=detr_width // 2),
    bbox_head=dict(num_classes=1, embed_dims=detr_width),
    test_cfg=dict(max_per_img=10))

train_pipeline = [
    dict(type='LoadPairedImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PairedResize', scale=img_scale, keep_ratio=True),
    dict(type='PairedRandomFlip', prob=0.5),
    dict(type='PackPairedDetInputs'),
]
test_pipeline = [
    dict(type='LoadPairedImageFromFile'),
    dict(type='PairedResize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackPairedDetInputs',
         meta_keys=('img_id', 'img_path', 'img_ir_path', 'ori_shape', 'img_shape',
                    'scale_factor')),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root='',
        data_prefix=dict(img=sample_root, img_ir=sample_root),
        ann_file=sample_infos + 'llvip_infos_test.json',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root='',
        data_prefix=dict(img=sample_root, img_ir=sample_root),
        ann_file=sample_infos + 'llvip_infos_test.json',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=sample_infos + 'llvip_infos_test.json')
test_evaluator = val_evaluator

# schedule (our choice, sized to the 2-core CPU): AdamW lr 2e-4 on every parameter (a tiny
# model trained from scratch: no backbone lr multiplier), 300 epochs x 3 iterations.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=300, val_interval=100)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = []
randomness = dict(seed=0)
default_hooks = dict(
    logger=dict(interval=3), checkpoint=dict(interval=100, max_keep_ckpts=1),
    visualization=dict(draw=False))
custom_hooks = [dict(type='RandomStateHook')]  # bit-exact --resume (mmfusion.engine.hooks)
