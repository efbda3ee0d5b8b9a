# SSLFusion on DENSE (SeeingThroughFog), Car only, as the official
# tools/cfgs/dense/voxel_rcnn_car_SSLFusion_4card_bs2_stf.yaml: 4 GPUs x 2 samples, the KITTI
# recipe otherwise (no GT sampling: the official DENSE yaml's augmentor list has none). Data from
#   python tools/create_data.py dense --root-path data/SeeingThroughFog --out-dir data/dense_infos
# (mmfusion's DENSE converter: dense_infos_<split>.pkl for every splits/*.txt, with the folders
# lidar_hdl64_strongest/ and cam_stereo_left_lut/ linked beside them). Splits as the official
# dataset yaml: train on train_all_FOV3000_60, test on test_clear_FOV3000_25; the weather and
# illumination test sets are the other converted split files, e.g. for splits/test_snow_day.txt
#   --cfg-options test_dataloader.dataset.ann_file=dense_infos_test_snow_day.pkl
#   test_evaluator.ann_file=data/dense_infos/dense_infos_test_snow_day.pkl
# Points have 5 features (x, y, z, intensity, ring), of which 4 are used, as the official yaml.
_base_ = ['./sslfusion_r50-fpn_voxel-rcnn_4xb4-80e_kitti-3d-3class.py']

data_root = '{{ fileDirname }}/../../../data/dense_infos/'
train_split = 'train_all_FOV3000_60'
test_split = 'test_clear_FOV3000_25'
class_names = ['Car']
metainfo = dict(classes=class_names)
point_cloud_range = [0, -40, -3, 70.4, 40, 1]
load_dim = 5
train_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=load_dim, use_dim=4),
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True),
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
    dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=load_dim, use_dim=4),
    dict(type='LoadImageFromFile'),
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='Pack3DDetInputs', keys=['points', 'img'])
]
model = dict(
    rpn_head=dict(
        num_classes=1,
        anchor_generator=dict(
            _delete_=True,
            type='Anchor3DRangeGenerator',
            ranges=[[0, -40.0, -1.78, 70.4, 40.0, -1.78]],
            sizes=[[3.9, 1.6, 1.56]],
            rotations=[0, 1.57],
            reshape_out=False)),
    roi_head=dict(num_classes=1),
    train_cfg=dict(
        rpn=dict(assigner=dict(
            _delete_=True, type='Max3DIoUAssigner',
            iou_calculator=dict(type='BboxOverlapsNearest3D'), pos_iou_thr=0.6,
            neg_iou_thr=0.45, min_pos_iou=_base_.forced_match_min_iou, ignore_iof_thr=-1)),
        rcnn=dict(assigner=dict(
            _delete_=True, type='Max3DIoUAssigner',
            iou_calculator=dict(type='BboxOverlaps3D', coordinate='lidar'), pos_iou_thr=0.55,
            neg_iou_thr=0.55, min_pos_iou=0.55, ignore_iof_thr=-1))))
data_prefix = dict(pts='lidar_hdl64_strongest', img='cam_stereo_left_lut')
train_dataloader = dict(
    batch_size=2,
    dataset=dict(data_root=data_root, ann_file=f'dense_infos_{train_split}.pkl',
                 data_prefix=data_prefix, pipeline=train_pipeline, metainfo=metainfo))
val_dataloader = dict(
    dataset=dict(data_root=data_root, ann_file=f'dense_infos_{test_split}.pkl',
                 data_prefix=data_prefix, pipeline=test_pipeline, metainfo=metainfo))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=f'{data_root}dense_infos_{test_split}.pkl')
test_evaluator = val_evaluator
