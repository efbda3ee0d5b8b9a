# MVX-Net (KITTI, 3 classes) with GeminiFusion after *both* VFE layers, as the official model
# (JiaDingCN/GeminiFusion, branch 3d_object_detection_kitti, config geminifusion_mvxnet, voxel
# encoder DynamicVFE_modified): a 64-wide fusion after the first VFE layer (five 256 -> 64
# lateral convs) and the 128-wide one after the last. The stock mmdet3d config otherwise.
# An official checkpoint converted once (nothing is downloaded at run time):
#   https://github.com/JiaDingCN/GeminiFusion/releases/download/MVXNET/geminifusion_mvxnet.pth
#   python tools/model_converters/geminifusion_kitti_official_to_mmfusion.py \
#       geminifusion_mvxnet.pth checkpoints/geminifusion_mvxnet_kitti_official.pth
#   python tools/test.py projects/GeminiFusion/configs/<this file> \
#       checkpoints/geminifusion_mvxnet_kitti_official.pth
_base_ = ['mmdet3d::mvxnet/mvxnet_fpn_dv_second_secfpn_8xb2-80e_kitti-3d-3class.py']

custom_imports = dict(imports=['mmfusion.det3d'], allow_failed_imports=False)

model = dict(pts_voxel_encoder=dict(
    type='GeminiDynamicVFE', fusion_layer=dict(type='GeminiPointFusion')))
custom_hooks = [dict(type='RandomStateHook')]  # bit-exact --resume (mmfusion.engine.hooks)
