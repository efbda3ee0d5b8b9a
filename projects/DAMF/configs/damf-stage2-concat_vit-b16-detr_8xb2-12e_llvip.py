# DAMF ablation (LLVIP): concatenation baseline, the fusion module without cross-attention and
# without gating (concat of RGB and infrared tokens + fusion MLP 2C -> 4C -> C, 7.08M
# parameters); everything else as ./damf-stage2_vit-b16-detr_8xb2-12e_llvip.py.
_base_ = ['./damf-stage2_vit-b16-detr_8xb2-12e_llvip.py']

model = dict(fusion=dict(cross_attention=False, gating=False))
