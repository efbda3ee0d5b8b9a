# DAMF stage 0, dataset-agnostic part: the RGB detector (ViT-B/16 + DETR) trained on the visible
# images alone, with the DAMF pipelines (640x512), the stage-0 schedule, the degraded test sets
# for eval_degradations.py and mmdet's runtime. A dataset config adds its paired dataset base
# (configs/_base_/datasets/*_paired_detection.py), its number of classes and the DAMF pipelines
# in its dataloaders (see damf-stage0_vit-b16-detr_8xb2-50e_llvip.py).
_base_ = [
    './datasets/damf_pipelines_640x512.py',
    './models/damf-stage0_vit-b16-detr.py',
    './schedules/damf-stage0_adamw-50e.py',
    '../../../../configs/_base_/degradations/rgb_degradation_test_sets.py',
    '../../../../configs/_base_/degradations/rgb_scene_test_sets.py',
    'mmdet::_base_/default_runtime.py',
]

default_hooks = dict(checkpoint=dict(interval=5, max_keep_ckpts=2))
