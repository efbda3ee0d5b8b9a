# DAMF ablation (LLVIP): no distribution alignment, the fusion module trained with the detection
# loss alone (0.5 * L_det, the weight kept so only the alignment term changes); everything
# else as ./damf-stage2_vit-b16-detr_8xb2-12e_llvip.py.
_base_ = ['./damf-stage2_vit-b16-detr_8xb2-12e_llvip.py']

model = dict(align_loss=None)
