# Train on one RGB degradation (the protocol of DAMF, CVPR 2026: the fusion is trained with a
# single degradation type and tested on seen and unseen ones). Method-neutral: a transform for
# the method's own train pipeline, placed right after the pair is loaded (it degrades the visible
# image only; the infrared image stays clean). Models and severity levels:
# mmfusion/datasets/transforms/degradations.py.
#
# Use in a method config:
#   _base_ = [..., '../../../configs/_base_/degradations/rgb_degradation_train.py']
#   train_degradation = dict(_base_.train_degradation, kinds=['night'])  # another kind
#   train_pipeline = [dict(type='LoadPairedImageFromFile'), train_degradation, ...]
#   train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
# (keep the variable name `train_degradation`: tools/analysis_tools/eval_degradations.py reads
# its kinds to mark test sets as seen or unseen).
#
# Our choices (the paper's synthesis is not public): half of the training images degraded
# (prob=0.5, the other half clean), severity drawn uniformly from levels 1-5, fresh noise every
# epoch (seed=None: numpy's generator, seeded by the runner's `randomness`).
train_degradation = dict(
    type='RandomRGBDegradation', kinds=['overexposure'], severities=[1, 2, 3, 4, 5], prob=0.5,
    seed=None)
