# Stock mmdet3d MVX-Net (KITTI, 3 classes) on the bundled 6-frame KITTI sample, on CPU or GPU.
#
# The model, pipelines and schedule type are mmdet3d's own config, unchanged. What makes it run
# on CPU is the single `custom_imports` line: importing `mmfusion.det3d` routes the CUDA-only
# mmcv ops the model calls (DynamicScatter in DynamicVFE) through mmfusion.ops and makes spconv
# use its Native algorithm for CPU tensors (see mmfusion/ops/cpu_fallbacks.py). The other
# overrides point the data at the sample, shorten the schedule for a demo, and pick a visualizer
# that does not let boxes behind the camera wipe the picture (a stock mmdet3d 1.4 defect).
_base_ = ['mmdet3d::mvxnet/mvxnet_fpn_dv_second_secfpn_8xb2-80e_kitti-3d-3class.py']

custom_imports = dict(imports=['mmfusion.det3d'], allow_failed_imports=False)

# ---- sample data: infos made by `tools/create_data.py kitti` (see `make demo`) --------------
data_root = '{{ fileDirname }}/../../work_dirs/demo_kitti/data/'
ann_file = 'kitti_infos_trainval.pkl'  # all 6 frames: the demo measures fitting, not validation
train_dataloader = dict(
    num_workers=0,
    dataset=dict(times=1, dataset=dict(data_root=data_root, ann_file=ann_file)))
val_dataloader = dict(num_workers=0, dataset=dict(data_root=data_root, ann_file=ann_file))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + ann_file)
test_evaluator = val_evaluator

# ---- demo schedule: a few minutes on 2 CPU cores -------------------------------------------
# The unchanged stock model costs ~30-50 s per iteration (batch 2) on 2 CPU cores (ResNet-50 at
# the stock image scales, the sparse encoder, the SECOND BEV backbone), so the demo trains for
# 2 epochs = 6 iterations: it proves the pipeline end to end, not accuracy. The stock schedule
# is kept: its 1000-iteration linear warm-up holds the LR near 3e-4 here (a warm-up shortened to
# the demo's length reaches 3e-3 at once and, from random init, diverges: measured inf boxes).
max_epochs = 2
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(type='CheckpointHook', interval=max_epochs))
load_from = None  # the stock config downloads pretrained weights; nothing is fetched here
visualizer = dict(type='CameraViewDet3DVisualizer')
custom_hooks = [dict(type='RandomStateHook')]  # bit-exact --resume (mmfusion.engine.hooks)
