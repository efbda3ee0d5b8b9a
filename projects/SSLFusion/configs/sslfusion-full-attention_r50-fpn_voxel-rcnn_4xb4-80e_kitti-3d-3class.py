# Ablation "LFM vs full attention": LFM replaced by full QKV cross-attention from each voxel to
# the image features of all voxels of its sample (quadratic in the number of voxels; see
# tools/analysis_tools/benchmark_latent_fusion.py for its cost).
_base_ = ['./sslfusion_r50-fpn_voxel-rcnn_4xb4-80e_kitti-3d-3class.py']
model = dict(middle_encoder=dict(fusion=dict(layer_cfg=dict(
    lfm_cfg=dict(mode='attention')))))
