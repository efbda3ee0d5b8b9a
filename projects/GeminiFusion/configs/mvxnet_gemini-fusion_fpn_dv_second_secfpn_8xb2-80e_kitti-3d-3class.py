# MVX-Net (KITTI, 3 classes) with GeminiFusion in place of PointFusion: the stock mmdet3d config,
# unchanged except the voxel encoder's fusion layer (GeminiPointFusion keeps PointFusion's
# arguments, sampling and 128-channel output, so nothing else in the detector changes).
# Official counterpart: JiaDingCN/GeminiFusion, branch 3d_object_detection_kitti, config
# geminifusion_mvxnet; it also fuses after the first VFE layer (see the README for the difference).
_base_ = ['mmdet3d::mvxnet/mvxnet_fpn_dv_second_secfpn_8xb2-80e_kitti-3d-3class.py']

custom_imports = dict(imports=['mmfusion.det3d'], allow_failed_imports=False)

model = dict(pts_voxel_encoder=dict(fusion_layer=dict(type='GeminiPointFusion')))
# stock Det3DLocalVisualizer plus a camera + bird's-eye picture drawn without open3d (inferencer,
# tools/test.py --show-dir); the stock kitti-3d-3class base defines vis_backends (Local)
visualizer = dict(type='CameraViewDet3DVisualizer')
custom_hooks = [dict(type='RandomStateHook')]  # bit-exact --resume (mmfusion.engine.hooks)
