# DAMF stage 0 on LLVIP (person): the RGB detector (ViT-B/16 + DETR) trained on
# the visible images alone. Dataset-agnostic part: ./_base_/damf-stage0_vit-b16-detr_8xb2-50e.py;
# commands (stage 0 -> 1 -> 2): projects/DAMF/README.md.
#   python tools/create_data.py llvip --root-path data/LLVIP --out-dir data/llvip_infos
#   bash tools/dist_train.sh projects/DAMF/configs/damf-stage0_vit-b16-detr_8xb2-50e_llvip.py 8
# The RGB-only baseline on the degraded test sets (`degradation_test_sets`, `scene_test_sets`):
#   python tools/analysis_tools/eval_degradations.py CONFIG CHECKPOINT \
#       --test-sets degradation_test_sets
_base_ = [
    '../../../configs/_base_/datasets/llvip_paired_detection.py',
    './_base_/damf-stage0_vit-b16-detr_8xb2-50e.py',
]

model = dict(bbox_head=dict(num_classes=1))
train_dataloader = dict(
    batch_size=2, num_workers=2, dataset=dict(pipeline=_base_.damf_train_pipeline))
val_dataloader = dict(
    batch_size=2, num_workers=2, dataset=dict(pipeline=_base_.damf_test_pipeline))
test_dataloader = val_dataloader
