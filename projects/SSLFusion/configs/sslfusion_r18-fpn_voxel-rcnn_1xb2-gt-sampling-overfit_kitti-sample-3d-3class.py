# The sample overfit config (./sslfusion_r18-fpn_voxel-rcnn_1xb2-overfit_kitti-sample-3d-3class.py)
# with the official multimodal GT sampling on: database objects (from the sample's train frames,
# `make demo` / tools/create_data.py kitti builds kitti_dbinfos_train.pkl and the image crops)
# pasted into the points and the image before the resize, with the official KITTI quotas
# (15 Car / 10 Pedestrian / 10 Cyclist per frame, objects with >= 5 points, 2D IoU < 0.5).
# Evaluation is unchanged (the 6 frames, no sampling). Not yet run: the documented overfit
# (docs/runs/sslfusion_kitti_sample_overfit/) is without sampling.
_base_ = ['./sslfusion_r18-fpn_voxel-rcnn_1xb2-overfit_kitti-sample-3d-3class.py']

db_sampler = dict(
    type='MultiModalDataBaseSampler',
    data_root=_base_.data_root,
    info_path=_base_.data_root + 'kitti_dbinfos_train.pkl',
    rate=1.0,
    prepare=dict(filter_by_difficulty=[-1],
                 filter_by_min_points=dict(Car=5, Pedestrian=5, Cyclist=5)),
    classes=_base_.class_names,
    sample_groups=dict(Car=15, Pedestrian=10, Cyclist=10),
    points_loader=dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4, use_dim=4))
train_pipeline = _base_.train_pipeline[:3] + [
    dict(type='MultiModalObjectSample', db_sampler=db_sampler, iou_2d_thr=0.5)
] + _base_.train_pipeline[3:]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
