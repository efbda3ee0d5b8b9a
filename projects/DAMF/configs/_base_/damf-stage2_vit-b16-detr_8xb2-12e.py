# DAMF stage 2, dataset-agnostic part: the stage-0 detector frozen (eval mode, no gradients; loaded
# with `load_from` from the stage-0 checkpoint), RGB and infrared tokens (CLS + 32x40 patches, both
# from the frozen ViT-B) fused by DistributionAlignedFusion (14.2M parameters, the only trained
# part), the fused patch tokens fed to the frozen neck/DETR, and
#     loss = -log P_normal(fused CLS) + 0.5 * L_det                       (paper, lambda = 0.5)
# with P_normal the Gaussian mixture that tools/fit_gmm.py fits on the stage-0 encoder's CLS
# features of normal RGB training images (stage 1).
#
# A dataset config adds its paired dataset base, its number of classes, the stage-0 checkpoint
# (`load_from`) and prior (`model.align_loss.gmm_file`), and the DAMF pipelines with the seen
# degradation in its dataloaders (see damf-stage2_vit-b16-detr_8xb2-12e_llvip.py).
_base_ = [
    './datasets/damf_pipelines_640x512.py',
    './models/damf-stage0_vit-b16-detr.py',
    './schedules/damf-stage2_adamw-12e.py',
    '../../../../configs/_base_/degradations/rgb_degradation_train.py',
    '../../../../configs/_base_/degradations/rgb_degradation_test_sets.py',
    '../../../../configs/_base_/degradations/rgb_scene_test_sets.py',
    'mmdet::_base_/default_runtime.py',
]

model = dict(
    backbone=dict(drop_path_rate=0.0, init_cfg=None),  # weights come from the stage-0 checkpoint
    fusion=dict(
        type='DistributionAlignedFusion',
        embed_dims=768,
        num_heads=8,
        cross_attention=True,
        gating=True,
        gate_reduction=2,  # gate 2C -> C -> 2C, the paper's 2.4M (4: 1.2M, 13.0M in all)
        mlp_ratio=4.0,
        rgb_residual=True),
    # gmm_file: set by each dataset's stage-2 config (the file tools/fit_gmm.py writes)
    align_loss=dict(type='GMMNegLogLikelihoodLoss', gmm_file=None, loss_weight=1.0),
    det_loss_weight=0.5,
    freeze_detector=True)

default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=2))
