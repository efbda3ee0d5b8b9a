# KITTI 3-class LiDAR + front camera (image_2) data for SSLFusion, from mmdet3d's KittiDataset.
# Augmentations follow the official SSLFusion KITTI yaml: world flip along x, world rotation
# +-pi/4, world scaling [0.95, 1.05]. The image is neither resized nor cropped (the official model
# sees the full image); mmdet3d's RandomFlip3D flips it together with the points, which SAM
# accounts for (it undoes the 3D flip and applies the image flip to the projections). GT
# sampling as the official yaml (gt_sampling with AUG_WITH_IMAGE): up to 15 Car, 10 Pedestrian,
# 10 Cyclist per frame from kitti_dbinfos_train.pkl (objects with >= 5 points), pasted into the
# points AND the image (MultiModalObjectSample; the database and its image crops come from
# tools/create_data.py kitti); the official road-plane placement is not used (README).
dataset_type = 'KittiDataset'
data_root = '{{ fileDirname }}/../../../../../data/kitti/'
class_names = ['Pedestrian', 'Cyclist', 'Car']
metainfo = dict(classes=class_names)
modality = dict(use_lidar=True, use_camera=True)
point_cloud_range = [0, -40, -3, 70.4, 40, 1]
backend_args = None
load_dim = 4
db_sampler = dict(
    type='MultiModalDataBaseSampler',
    data_root=data_root,
    info_path=data_root + 'kitti_dbinfos_train.pkl',
    rate=1.0,
    prepare=dict(filter_by_difficulty=[-1],
                 filter_by_min_points=dict(Car=5, Pedestrian=5, Cyclist=5)),
    classes=class_names,
    sample_groups=dict(Car=15, Pedestrian=10, Cyclist=10),
    points_loader=dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4, use_dim=4,
                       backend_args=backend_args),
    backend_args=backend_args)
train_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=load_dim, use_dim=4,
         backend_args=backend_args),
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True),
    dict(type='MultiModalObjectSample', db_sampler=db_sampler, iou_2d_thr=0.5),
    dict(type='RandomFlip3D', flip_ratio_bev_horizontal=0.5),
    dict(type='GlobalRotScaleTrans', rot_range=[-0.78539816, 0.78539816],
         scale_ratio_range=[0.95, 1.05], translation_std=[0, 0, 0]),
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectNameFilter', classes=class_names),
    dict(type='PointShuffle'),
    dict(type='Pack3DDetInputs', keys=['points', 'img', 'gt_bboxes_3d', 'gt_labels_3d'])
]
test_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=load_dim, use_dim=4,
         backend_args=backend_args),
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='Pack3DDetInputs', keys=['points', 'img'])
]
data_prefix = dict(pts='training/velodyne_reduced', img='training/image_2')
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='kitti_infos_train.pkl',
                 data_prefix=data_prefix, pipeline=train_pipeline, modality=modality,
                 metainfo=metainfo, box_type_3d='LiDAR', test_mode=False,
                 backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='kitti_infos_val.pkl',
                 data_prefix=data_prefix, pipeline=test_pipeline, modality=modality,
                 metainfo=metainfo, box_type_3d='LiDAR', test_mode=True,
                 backend_args=backend_args))
test_dataloader = val_dataloader
# mmdet3d's KittiMetric: 3D / BEV / 2D AP at R11 and R40 per class and difficulty. KITTI test-set
# submission files: --cfg-options test_evaluator.format_only=True
# test_evaluator.submission_prefix=work_dirs/<name>/kitti_submission (README, "Submit").
val_evaluator = dict(type='KittiMetric', ann_file=data_root + 'kitti_infos_val.pkl',
                     metric='bbox', backend_args=backend_args)
test_evaluator = val_evaluator

# Pictures (mmdet3d's MultiModalityDet3DInferencer, tools/test.py --show-dir, demos): the camera
# view with GT and predictions plus a bird's-eye view, drawn without open3d. For TensorBoard:
# vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='CameraViewDet3DVisualizer', vis_backends=vis_backends, name='visualizer')
