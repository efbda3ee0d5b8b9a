# DAMF stage 2 on FLIR-aligned (person, bicycle, car): the stage-0 detector frozen, only the fusion
# module trained, on RGB images with the seen degradation + clean infrared, with loss = -log
# P_normal(fused CLS) + 0.5 * L_det. Dataset-agnostic part:
# ./_base_/damf-stage2_vit-b16-detr_8xb2-12e.py; commands (stage 0 -> 1 -> 2):
# projects/DAMF/README.md. Seen/unseen degraded test sets and scenes:
#   python tools/analysis_tools/eval_degradations.py CONFIG CHECKPOINT \
#       --test-sets degradation_test_sets      (or scene_test_sets)
_base_ = [
    '../../../configs/_base_/datasets/flir_aligned_paired_detection.py',
    './_base_/damf-stage2_vit-b16-detr_8xb2-12e.py',
]

# stage-0 outputs: its checkpoint (the frozen detector) and the stage-1 prior fitted on it
stage0_work_dir = 'work_dirs/damf-stage0_vit-b16-detr_8xb2-50e_flir-aligned/'
load_from = stage0_work_dir + 'epoch_50.pth'
model = dict(
    bbox_head=dict(num_classes=3),
    align_loss=dict(gmm_file=stage0_work_dir + 'gmm_normal.pth'))

# training: RGB with the seen degradation (`train_degradation`: over-exposure, severity 1-5, half
# of the images) right after loading + clean infrared; validation on clean RGB
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    dataset=dict(pipeline=_base_.damf_train_pipeline[:1] + [_base_.train_degradation] +
                 _base_.damf_train_pipeline[1:]))
val_dataloader = dict(
    batch_size=2, num_workers=2, dataset=dict(pipeline=_base_.damf_test_pipeline))
test_dataloader = val_dataloader
