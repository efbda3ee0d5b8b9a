# Ablation (paper Sec. 4 ablations): one layer-adaptive noise vector shared by the key and the
# value (the official code, and the default, use separate key and value noise). Otherwise the
# MiT-B3 recipe.
_base_ = './geminifusion_mit-b3_3xb2-40k_nyudv2-rgbd-480x640.py'
model = dict(backbone=dict(fusion_cfg=dict(shared_noise=True)))
