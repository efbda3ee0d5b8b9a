# SSLFusion, same architecture at small widths, on the bundled 6-frame KITTI sample: trains in
# minutes on 2 CPU cores and proves image branch, fused sparse U-Net, RPN, Voxel R-CNN head,
# assigners and the KITTI metric together by overfitting the 6 frames (documented run:
# docs/runs/sslfusion_kitti_sample_overfit/; this config is its first stage, the
# `..._1xb2-normeval-ft_kitti-sample-...` config with BatchNorm frozen its second).
# Data: `python tools/create_data.py kitti --root-path tests/data/kitti
# --out-dir work_dirs/demo_kitti/data` (as `make demo`).
# Differences from the full config (sizes only, same modules and wiring): ResNet-18 trained from
# scratch (no pretrained weights are shipped) instead of a frozen ImageNet ResNet-50, images
# resized to 640x193, FPN 64 channels, 0.1 m voxels instead of 0.05 x 0.05 x 0.1 (RoI pooling
# radii doubled to keep the same neighbourhood in voxels), fusion widths halved, 32 latent nodes,
# 2+2 BEV layers at 32/64 channels, 64 RoIs per frame; only the horizontal flip is kept as
# augmentation (the run measures fitting) and the 6 frames are both training and evaluation set.
# On 2 CPU cores use OMP_NUM_THREADS=1 (about 4 s per iteration; 2 threads were slower).
_base_ = ['./sslfusion_r50-fpn_voxel-rcnn_4xb4-80e_kitti-3d-3class.py']

data_root = '{{ fileDirname }}/../../../work_dirs/demo_kitti/data/'
ann_file = 'kitti_infos_trainval.pkl'
class_names = ['Pedestrian', 'Cyclist', 'Car']
point_cloud_range = [0, -40, -3, 70.4, 40, 1]
voxel_size = [0.1, 0.1, 0.1]
model = dict(
    data_preprocessor=dict(voxel_layer=dict(voxel_size=voxel_size)),
    img_backbone=dict(depth=18, frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True),
                      norm_eval=False, init_cfg=None),
    img_neck=dict(in_channels=[64, 128, 256, 512], out_channels=64),
    middle_encoder=dict(
        sparse_shape=[41, 800, 704],
        voxel_size=voxel_size,
        mid_channels=(16, 32, 64, 64),
        fusion=dict(img_channels=64,
                    layer_cfg=dict(sam_cfg=dict(embed_channels=32),
                                   lfm_cfg=dict(num_latents=32, shared_channels=64,
                                                gate_channels=32)))),
    backbone=dict(layer_nums=[2, 2], out_channels=[32, 64]),
    neck=dict(in_channels=[32, 64], out_channels=[64, 64]),
    rpn_head=dict(in_channels=128, feat_channels=128),
    roi_head=dict(
        bbox_roi_extractor=dict(voxel_size=voxel_size, radii=(0.4, 0.8, 1.6, 3.2)),
        bbox_head=dict(shared_fc_channels=(128, 128), reg_channels=(128, 128),
                       cls_channels=(128, 128))),
    train_cfg=dict(rcnn=dict(sampler=dict(num=64))))

train_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4, use_dim=4),
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True),
    dict(type='Resize', scale=(640, 193), keep_ratio=True),
    dict(type='RandomFlip3D', flip_ratio_bev_horizontal=0.5),
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectNameFilter', classes=class_names),
    dict(type='PointShuffle'),
    dict(type='Pack3DDetInputs', keys=['points', 'img', 'gt_bboxes_3d', 'gt_labels_3d'])
]
test_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4, use_dim=4),
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(640, 193), keep_ratio=True),
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='Pack3DDetInputs', keys=['points', 'img'])
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(_delete_=True, type='RepeatDataset', times=10,
                 dataset=dict(type='KittiDataset', data_root=data_root, ann_file=ann_file,
                              data_prefix=dict(pts='training/velodyne_reduced',
                                               img='training/image_2'),
                              pipeline=train_pipeline,
                              modality=dict(use_lidar=True, use_camera=True),
                              metainfo=dict(classes=class_names), box_type_3d='LiDAR',
                              test_mode=False)))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, ann_file=ann_file,
                                   pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + ann_file)
test_evaluator = val_evaluator

# 15 passes of RepeatDataset(times=10) = 150 epochs of the 6 frames = 450 iterations at batch 2
lr = 0.005
max_epochs = 15
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [
    dict(type='OneCycleLR', eta_max=lr, pct_start=0.4, div_factor=10, final_div_factor=1e4,
         anneal_strategy='cos', begin=0, end=max_epochs, by_epoch=True,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingMomentum', eta_min=0.85, T_max=int(0.4 * max_epochs), begin=0,
         end=int(0.4 * max_epochs), by_epoch=True, convert_to_iter_based=True),
    dict(type='CosineAnnealingMomentum', eta_min=0.95, T_max=max_epochs - int(0.4 * max_epochs),
         begin=int(0.4 * max_epochs), end=max_epochs, by_epoch=True, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(logger=dict(interval=5),
                     checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=2))
