# Ablation "SAM off": image features are still sampled at the projected voxel centres (without a
# projection there is nothing to fuse), but without SAM's depth embedding weighting them.
_base_ = ['./sslfusion_r50-fpn_voxel-rcnn_4xb4-80e_kitti-3d-3class.py']
model = dict(middle_encoder=dict(fusion=dict(layer_cfg=dict(
    sam_cfg=dict(with_depth_embedding=False)))))
