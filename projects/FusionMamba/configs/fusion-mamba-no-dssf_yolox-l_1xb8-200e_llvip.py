# Ablation (paper Sec. 4, FMB components): Fusion-Mamba without DSSF; each FMB is SSCS plus the
# residual. Everything else as fusion-mamba_yolox-l_1xb8-200e_llvip.py.
_base_ = ['./fusion-mamba_yolox-l_1xb8-200e_llvip.py']

model = dict(backbone=dict(fusion_cfg=dict(use_dssf=False)))
