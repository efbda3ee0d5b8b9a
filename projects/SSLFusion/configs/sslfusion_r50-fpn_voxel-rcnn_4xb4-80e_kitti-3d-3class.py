# SSLFusion on KITTI, 3 classes, the official recipe: AdamW one-cycle, max LR 0.02, 80 epochs,
# 4 samples per GPU (official KITTI yaml; the GPU count is not stated there, 4 as for DENSE).
_base_ = [
    './_base_/models/sslfusion_r50-fpn_voxel-rcnn.py',
    './_base_/datasets/kitti-3d-3class-lidar-camera.py',
    './_base_/schedules/adamw-onecycle-80e.py',
    'mmdet3d::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmfusion.det3d'], allow_failed_imports=False)
