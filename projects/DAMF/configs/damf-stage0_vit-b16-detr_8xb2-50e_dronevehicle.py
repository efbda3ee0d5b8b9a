# DAMF stage 0 on DroneVehicle (car, truck, bus, van, freight_car; the infrared label set,
# shared by the registered pair): the RGB detector (ViT-B/16 + DETR) trained on the visible
# images alone. Model: ./_base_/models/damf-stage0_vit-b16-detr.py; schedule:
# ./_base_/schedules/damf-stage0_adamw-50e.py; commands: projects/DAMF/README.md.
#   python tools/create_data.py dronevehicle --root-path data/DroneVehicle \
#       --out-dir data/dronevehicle_infos
#   bash tools/dist_train.sh \
#       projects/DAMF/configs/damf-stage0_vit-b16-detr_8xb2-50e_dronevehicle.py 8
_base_ = [
    './_base_/datasets/dronevehicle_paired_detection.py',
    './_base_/datasets/damf_pipelines_640x512.py',
    './_base_/models/damf-stage0_vit-b16-detr.py',
    './_base_/schedules/damf-stage0_adamw-50e.py',
    '../../../configs/_base_/degradations/rgb_degradation_test_sets.py',
    '../../../configs/_base_/degradations/rgb_scene_test_sets.py',
    'mmdet::_base_/default_runtime.py',
]

model = dict(bbox_head=dict(num_classes=5))
train_dataloader = dict(
    batch_size=2, num_workers=2, dataset=dict(pipeline=_base_.damf_train_pipeline))
val_dataloader = dict(
    batch_size=2, num_workers=2, dataset=dict(pipeline=_base_.damf_test_pipeline))
test_dataloader = val_dataloader
default_hooks = dict(checkpoint=dict(interval=5, max_keep_ckpts=2))
# the RGB-only baseline on degraded test sets (`degradation_test_sets`, `scene_test_sets`):
#   python tools/analysis_tools/eval_degradations.py CONFIG CHECKPOINT \
#       --test-sets degradation_test_sets
