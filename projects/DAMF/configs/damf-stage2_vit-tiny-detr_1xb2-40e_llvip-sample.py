# DAMF stage 2, small: the small stage-0 detector (./damf-stage0_vit-tiny-detr_1xb2-300e_
# llvip-sample.py) frozen, a DistributionAlignedFusion of width 64 (8 heads) trained alone on
# degraded RGB + clean infrared pairs of the LLVIP sample with
#     loss = -log P_normal(fused CLS) + 0.5 * L_det.
# For tests and the documented CPU run (docs/runs/damf_llvip_sample/README.md gives the commands):
#   python tools/fit_gmm.py \
#       projects/DAMF/configs/damf-stage0_vit-tiny-detr_1xb2-300e_llvip-sample.py \
#       work_dirs/damf_llvip_sample/stage0/epoch_300.pth \
#       --out work_dirs/damf_llvip_sample/gmm_normal.pth ...
#   python tools/train.py \
#       projects/DAMF/configs/damf-stage2_vit-tiny-detr_1xb2-40e_llvip-sample.py
_base_ = ['./damf-stage0_vit-tiny-detr_1xb2-300e_llvip-sample.py']

work_root = '{{ fileDirname }}/../../../work_dirs/damf_llvip_sample/'
load_from = work_root + 'stage0/epoch_300.pth'  # the stage-0 checkpoint (detector weights)
model = dict(
    fusion=dict(
        type='DistributionAlignedFusion', embed_dims=64, num_heads=8, cross_attention=True,
        gating=True, gate_reduction=4, mlp_ratio=4.0, rgb_residual=True),
    align_loss=dict(
        type='GMMNegLogLikelihoodLoss', gmm_file=work_root + 'gmm_normal.pth', loss_weight=1.0),
    det_loss_weight=0.5,
    freeze_detector=True)

# seen degradation of this run: over-exposure, severities 2..4, on every training sample
# (the infrared image is never degraded); see mmfusion/datasets/transforms/degradations.py
train_degradation = dict(type='RandomRGBDegradation', kinds=['overexposure'], severities=(2, 3, 4))
train_dataloader = dict(
    dataset=dict(pipeline=_base_.train_pipeline[:1] + [train_degradation] +
                 _base_.train_pipeline[1:]))

# schedule (our choice, sized to the 2-core CPU): AdamW lr 1e-3 on the fusion module (the only
# parameters with gradients), 40 epochs x 3 iterations, a checkpoint every 2 epochs for the
# NLL curve (tools/analysis_tools/damf_alignment_nll.py).
optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_cfg = dict(max_epochs=40, val_interval=40)
default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts=-1))
