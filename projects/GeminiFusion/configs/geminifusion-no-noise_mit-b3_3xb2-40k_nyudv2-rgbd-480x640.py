# Ablation (paper Sec. 4 ablations): GeminiFusion without the layer-adaptive noise on the first
# key and value. Otherwise the MiT-B3 recipe.
_base_ = './geminifusion_mit-b3_3xb2-40k_nyudv2-rgbd-480x640.py'
model = dict(backbone=dict(fusion_cfg=dict(use_noise=False)))
