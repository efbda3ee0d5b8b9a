# SSLFusion (arXiv 2504.05170) for KITTI geometry, 3 classes, as the official
# tools/cfgs/kitti/voxel_rcnn_3class_SSLFusion.yaml, built from mmdet/mmdet3d parts (see
# mmfusion/models/detectors/sslfusion.py). Layer widths, anchors, RoI pooling and target settings
# are the official ones; train/test settings use mmdet3d's Part-A2 layout (rpn, rpn_proposal,
# rcnn). The ResNet-50 is ImageNet-initialised and frozen as in the official model: put the
# torchvision weights at checkpoints/resnet50-19c8e357.pth
# (https://download.pytorch.org/models/resnet50-19c8e357.pth); nothing is downloaded at run time.
# The torchvision file loads as it is (mmdet's ResNet has torchvision's names; no converter).
voxel_size = [0.05, 0.05, 0.1]
pc_range = [0, -40, -3, 70.4, 40, 1]  # metres; the datasets base names it point_cloud_range
img_strides = (8, 16, 32, 64, 128)  # FPN from C3 (start_level=1) with two extra levels
# OpenPCDet's AxisAlignedTargetAssigner makes each GT's best anchors positive at any IoU > 0
# (MaxIoUAssigner: at IoU >= min_pos_iou; 0 itself would match every anchor of a GT without
# overlap, so the smallest IoU counted as overlap is used)
forced_match_min_iou = 1e-6
model = dict(
    type='SSLFusion',
    data_preprocessor=dict(
        type='Det3DDataPreprocessor',
        voxel=True,
        voxel_type='hard',
        voxel_layer=dict(max_num_points=5, point_cloud_range=pc_range,
                         voxel_size=voxel_size, max_voxels=(16000, 40000)),
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    img_backbone=dict(
        type='mmdet.ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=4,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/resnet50-19c8e357.pth')),
    img_neck=dict(
        type='mmdet.FPN',
        in_channels=[256, 512, 1024, 2048],
        out_channels=256,
        start_level=1,
        add_extra_convs='on_input',
        num_outs=5,
        upsample_cfg=dict(mode='bilinear')),  # official fpn.py: bilinear top-down path
    voxel_encoder=dict(type='HardSimpleVFE', num_features=4),
    middle_encoder=dict(
        type='SSLFusionSparseUNet',
        in_channels=4,
        sparse_shape=[41, 1600, 1408],
        voxel_size=voxel_size,
        point_cloud_range=pc_range,
        encoder_channels=(16, 32, 64, 64),
        mid_channels=(32, 64, 128, 128),
        encoder_img_levels=(0, 1, 2, 3),
        decoder_img_levels=(2, 1, 0),
        shared_lateral_convs=True,  # official: one lateral conv per FPN level (4), shared
        fusion=dict(
            img_channels=256,
            img_strides=img_strides,
            layer_cfg=dict(
                sam_cfg=dict(embed_channels=64, with_depth_embedding=True),
                lfm_cfg=dict(mode='latent', num_latents=128)))),
    backbone=dict(
        type='SECOND',
        in_channels=256,
        layer_nums=[5, 5],
        layer_strides=[1, 2],
        out_channels=[64, 128]),
    neck=dict(
        type='SECONDFPN',
        in_channels=[64, 128],
        upsample_strides=[1, 2],
        out_channels=[128, 128]),
    rpn_head=dict(
        type='PartA2RPNHead',
        num_classes=3,
        in_channels=256,
        feat_channels=256,
        use_direction_classifier=True,
        anchor_generator=dict(
            type='Anchor3DRangeGenerator',
            ranges=[[0, -40.0, -0.6, 70.4, 40.0, -0.6],
                    [0, -40.0, -0.6, 70.4, 40.0, -0.6],
                    [0, -40.0, -1.78, 70.4, 40.0, -1.78]],
            sizes=[[0.8, 0.6, 1.73], [1.76, 0.6, 1.73], [3.9, 1.6, 1.56]],
            rotations=[0, 1.57],
            reshape_out=False),
        diff_rad_by_sin=True,
        assigner_per_size=True,
        assign_per_class=True,
        dir_offset=0.78539,
        bbox_coder=dict(type='DeltaXYZWLHRBBoxCoder'),
        loss_cls=dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                      loss_weight=1.0),
        loss_bbox=dict(type='mmdet.SmoothL1Loss', beta=1.0 / 9.0, loss_weight=2.0),
        loss_dir=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=0.2)),
    roi_head=dict(
        type='VoxelRCNNRoIHead',
        num_classes=3,
        bbox_roi_extractor=dict(
            type='VoxelRoIGridPooling',
            feature_sources=('x_conv1', 'x_conv2', 'x_conv3', 'x_conv4'),
            in_channels=(16, 32, 64, 64),
            voxel_size=voxel_size,
            point_cloud_range=pc_range,
            grid_size=6,
            mlp_channels=[(32, 32)] * 4,
            query_ranges=[(4, 4, 4)] * 4,
            radii=(0.2, 0.4, 0.8, 1.6),
            nsamples=[16] * 4,
            pre_mlp=True,
            pool_mode='max'),
        bbox_head=dict(
            type='VoxelRCNNBBoxHead',  # PVRCNNBBoxHead with OpenPCDet's initialisation
            in_channels=128,
            grid_size=6,
            num_classes=1,
            class_agnostic=True,
            shared_fc_channels=(256, 256),
            reg_channels=(256, 256),
            cls_channels=(256, 256),
            dropout_ratio=0.3,
            with_corner_loss=True,
            bbox_coder=dict(type='DeltaXYZWLHRBBoxCoder'),
            loss_bbox=dict(type='mmdet.SmoothL1Loss', beta=1.0 / 9.0, reduction='sum',
                           loss_weight=1.0),
            loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True, reduction='sum',
                          loss_weight=1.0))),
    train_cfg=dict(
        rpn=dict(
            assigner=[
                dict(type='Max3DIoUAssigner', iou_calculator=dict(type='BboxOverlapsNearest3D'),
                     pos_iou_thr=0.5, neg_iou_thr=0.35, min_pos_iou=forced_match_min_iou,
                     ignore_iof_thr=-1),
                dict(type='Max3DIoUAssigner', iou_calculator=dict(type='BboxOverlapsNearest3D'),
                     pos_iou_thr=0.5, neg_iou_thr=0.35, min_pos_iou=forced_match_min_iou,
                     ignore_iof_thr=-1),
                dict(type='Max3DIoUAssigner', iou_calculator=dict(type='BboxOverlapsNearest3D'),
                     pos_iou_thr=0.6, neg_iou_thr=0.45, min_pos_iou=forced_match_min_iou,
                     ignore_iof_thr=-1),
            ],
            allowed_border=0,
            pos_weight=-1,
            debug=False),
        rpn_proposal=dict(nms_pre=9000, nms_post=512, max_num=512, nms_thr=0.8, score_thr=0,
                          use_rotate_nms=True),
        rcnn=dict(
            assigner=[
                dict(type='Max3DIoUAssigner',
                     iou_calculator=dict(type='BboxOverlaps3D', coordinate='lidar'),
                     pos_iou_thr=0.55, neg_iou_thr=0.55, min_pos_iou=0.55, ignore_iof_thr=-1)
                for _ in range(3)
            ],
            sampler=dict(
                type='IoUNegPiecewiseSampler',
                num=128,
                pos_fraction=0.5,
                neg_piece_fractions=[0.8, 0.2],
                neg_iou_piece_thrs=[0.55, 0.1],
                neg_pos_ub=-1,
                add_gt_as_proposals=False,
                return_iou=True),
            cls_pos_thr=0.75,
            cls_neg_thr=0.25)),
    test_cfg=dict(
        rpn=dict(nms_pre=2048, nms_post=100, max_num=100, nms_thr=0.7, score_thr=0,
                 use_rotate_nms=True),
        rcnn=dict(use_rotate_nms=True, use_raw_score=True, nms_thr=0.1, score_thr=0.3)))
