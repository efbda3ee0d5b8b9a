# Ablation "single-stage vs multi-stage fusion": one SAF layer, after the last encoder stage
# (voxel stride 8 with image level 3, the scale the BEV map is taken from); no other encoder or
# decoder stage fuses. Which single stage the paper used is not stated; this choice is ours.
_base_ = ['./sslfusion_r50-fpn_voxel-rcnn_4xb4-80e_kitti-3d-3class.py']
model = dict(middle_encoder=dict(encoder_img_levels=(None, None, None, 3),
                                 decoder_img_levels=(None, None, None)))
