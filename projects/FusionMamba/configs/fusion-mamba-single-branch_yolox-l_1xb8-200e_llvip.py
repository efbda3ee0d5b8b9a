# Ablation (paper Sec. 4, dual vs single attention branch): DSSF gating in one direction only
# (the RGB stream gets the infrared-gated term, the infrared stream none; see
# mmfusion/models/fusion/dual_state_space_fusion.py). Everything else as
# fusion-mamba_yolox-l_1xb8-200e_llvip.py.
_base_ = ['./fusion-mamba_yolox-l_1xb8-200e_llvip.py']

model = dict(backbone=dict(fusion_cfg=dict(single_branch=True)))
