# Ablation "LFM vs concatenation": voxel and image features concatenated and projected.
_base_ = ['./sslfusion_r50-fpn_voxel-rcnn_4xb4-80e_kitti-3d-3class.py']
model = dict(middle_encoder=dict(fusion=dict(layer_cfg=dict(
    lfm_cfg=dict(mode='concat')))))
