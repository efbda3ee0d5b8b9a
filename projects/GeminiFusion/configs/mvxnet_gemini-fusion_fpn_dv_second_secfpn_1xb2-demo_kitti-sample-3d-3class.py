# MVX-Net + GeminiPointFusion on the bundled 6-frame KITTI sample, on CPU or GPU: the demo config
# of the stock model (data root work_dirs/demo_kitti/data/ made by `tools/create_data.py kitti`
# or `make demo`, 2-epoch schedule, no pretrained weights), with the fusion layer swapped exactly
# as in mvxnet_gemini-fusion_fpn_dv_second_secfpn_8xb2-80e_kitti-3d-3class.py. It proves the
# pipeline end to end in a few minutes on 2 CPU cores; it does not measure accuracy.
_base_ = ['../../../configs/mvxnet/mvxnet_fpn_dv_second_secfpn_1xb2-demo_kitti-sample-3d-3class.py']

model = dict(pts_voxel_encoder=dict(fusion_layer=dict(type='GeminiPointFusion')))
