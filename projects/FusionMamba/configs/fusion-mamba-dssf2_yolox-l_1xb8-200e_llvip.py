# Ablation (paper Sec. 4, number of DSSF blocks): 2 chained DSSF blocks per FMB instead of the
# official 8. Everything else as fusion-mamba_yolox-l_1xb8-200e_llvip.py.
_base_ = ['./fusion-mamba_yolox-l_1xb8-200e_llvip.py']

model = dict(backbone=dict(fusion_cfg=dict(num_dssf_blocks=2)))
