# DAMF ablation (LLVIP): align to P_degraded instead of P_normal, a Gaussian mixture fitted
# on the stage-0 encoder's CLS features of *degraded* training images (the seen degradation),
# i.e. adapting to the training degradation rather than to the pretrained distribution;
# everything else as ./damf-stage2_vit-b16-detr_8xb2-12e_llvip.py. The file is expected at
# `gmm_file` below (see projects/DAMF/README.md, "P_degraded").
_base_ = ['./damf-stage2_vit-b16-detr_8xb2-12e_llvip.py']

model = dict(align_loss=dict(gmm_file=_base_.stage0_work_dir + 'gmm_degraded.pth'))
