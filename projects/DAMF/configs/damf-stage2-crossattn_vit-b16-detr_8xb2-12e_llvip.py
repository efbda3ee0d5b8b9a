# DAMF ablation (LLVIP): concat + bidirectional cross-attention, no adaptive token gating
# (11.81M parameters); everything else as ./damf-stage2_vit-b16-detr_8xb2-12e_llvip.py (which is
# the full module: + gating).
_base_ = ['./damf-stage2_vit-b16-detr_8xb2-12e_llvip.py']

model = dict(fusion=dict(cross_attention=True, gating=False))
