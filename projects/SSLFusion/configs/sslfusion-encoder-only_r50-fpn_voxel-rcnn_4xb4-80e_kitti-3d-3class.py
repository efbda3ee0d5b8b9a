# Ablation: SAF at the four encoder stages only, no fusion in the 3D pyramid (decoder).
_base_ = ['./sslfusion_r50-fpn_voxel-rcnn_4xb4-80e_kitti-3d-3class.py']
model = dict(middle_encoder=dict(decoder_img_levels=(None, None, None)))
