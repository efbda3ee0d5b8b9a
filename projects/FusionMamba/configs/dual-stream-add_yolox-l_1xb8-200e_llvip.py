# Ablation (paper Sec. 4, baseline without FMB): the same two YOLOv5-l streams with no fusion
# block; the neck gets the sum of the two stage outputs at P3/P4/P5. Everything else (neck,
# head, recipe) as fusion-mamba_yolox-l_1xb8-200e_llvip.py.
_base_ = ['./fusion-mamba_yolox-l_1xb8-200e_llvip.py']

model = dict(backbone=dict(fusion_cfg=None))
