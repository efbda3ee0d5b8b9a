# DAMF ablation (LLVIP): end-to-end, the same model and loss as
# ./damf-stage2_vit-b16-detr_8xb2-12e_llvip.py but nothing frozen: the ViT (shared by both
# modalities), neck, DETR and fusion module all train (ViT lr x 0.1 as in stage 0; the
# detector in train mode, DETR dropout on).
_base_ = ['./damf-stage2_vit-b16-detr_8xb2-12e_llvip.py']

model = dict(freeze_detector=False)
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1, decay_mult=1.0)}))
