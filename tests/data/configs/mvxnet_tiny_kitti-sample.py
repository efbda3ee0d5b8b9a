# The stock MVX-Net KITTI config (through the demo config) with small widths and image scales,
# so that loss/predict tests and the 2-process distributed test run in seconds on CPU.
# Tests point it at converted infos with `kitti_cfg_options(data_root)` (tests/utils.py).
_base_ = ['../../../configs/mvxnet/mvxnet_fpn_dv_second_secfpn_1xb2-demo_kitti-sample-3d-3class.py']

point_cloud_range = [0, -40, -3, 70.4, 40, 1]
model = dict(
    img_backbone=dict(depth=18, norm_cfg=dict(type='BN', requires_grad=False)),
    img_neck=dict(in_channels=[64, 128, 256, 512], out_channels=32),
    pts_voxel_encoder=dict(
        feat_channels=[16, 16],
        fusion_layer=dict(img_channels=32, pts_channels=16, mid_channels=32, out_channels=32)),
    pts_middle_encoder=dict(
        in_channels=32,
        base_channels=8,
        output_channels=32,
        encoder_channels=((8, ), (16, 16, 16), (32, 32, 32), (32, 32, 32))),
    pts_backbone=dict(in_channels=64, layer_nums=[1, 1], out_channels=[32, 64]),
    pts_neck=dict(in_channels=[32, 64], out_channels=[32, 32]),
    pts_bbox_head=dict(in_channels=64, feat_channels=64))

train_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4, use_dim=4),
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True),
    dict(type='RandomResize', scale=[(320, 96), (640, 192)], keep_ratio=True),
    dict(type='GlobalRotScaleTrans', rot_range=[-0.78539816, 0.78539816],
         scale_ratio_range=[0.95, 1.05], translation_std=[0.2, 0.2, 0.2]),
    dict(type='RandomFlip3D', flip_ratio_bev_horizontal=0.5),
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='PointShuffle'),
    dict(type='Pack3DDetInputs',
         keys=['points', 'img', 'gt_bboxes_3d', 'gt_labels_3d', 'gt_bboxes', 'gt_labels'])
]
test_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4, use_dim=4),
    dict(type='LoadImageFromFile'),
    dict(type='MultiScaleFlipAug3D', img_scale=(640, 192), pts_scale_ratio=1, flip=False,
         transforms=[
             dict(type='Resize', scale=0, keep_ratio=True),
             dict(type='GlobalRotScaleTrans', rot_range=[0, 0], scale_ratio_range=[1., 1.],
                  translation_std=[0, 0, 0]),
             dict(type='RandomFlip3D'),
             dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
         ]),
    dict(type='Pack3DDetInputs', keys=['points', 'img'])
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
