# DAMF stage 0: RGB detector = ViT-B/16 encoder with a CLS token (mmseg VisionTransformer) +
# 1x1-conv neck (mmdet ChannelMapper, 768 -> 256) + DETR encoder/decoder/head (mmdet's DETR
# recipe: 6 + 6 layers, width 256, 8 heads, 100 queries, Hungarian matching, CE + L1 + GIoU).
# Trains on the RGB image alone; the paired pipeline's infrared image is ignored.
# Paper: "Distribution-Aligned Multimodal Fusion for Robust Object Detection", CVPR 2026.
# Choices (ours, the paper does not give them): ViT-B/16 initialised from ImageNet weights
# (timm's ViT-B/16, converted with mmseg's tools/model_converters/vit2mmseg.py to
# pretrain/vit-b16_in21k-in1k_mmseg.pth), stochastic depth 0.1, input 640x512 (W x H), both
# modalities normalised with the ImageNet mean/std (the infrared image goes through the same
# encoder in stage 2).
custom_imports = dict(imports=['mmfusion.det'], allow_failed_imports=False)

vit_img_size = (512, 640)  # (H, W) of the position-embedding grid: 32 x 40 patches
model = dict(
    type='DAMFDetector',
    num_queries=100,
    data_preprocessor=dict(
        type='PairedDetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        ir_mean=[123.675, 116.28, 103.53],
        ir_std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=16),
    backbone=dict(
        type='mmseg.VisionTransformer',
        img_size=vit_img_size,
        patch_size=16,
        in_channels=3,
        embed_dims=768,
        num_layers=12,
        num_heads=12,
        mlp_ratio=4,
        out_indices=-1,
        qkv_bias=True,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.1,
        with_cls_token=True,
        output_cls_token=True,
        final_norm=True,
        norm_cfg=dict(type='LN', eps=1e-6),
        act_cfg=dict(type='GELU'),
        interpolate_mode='bicubic',
        # python tools/model_converters/vit_to_mmseg_vit.py \
        #     vit_base_patch16_224.augreg_in21k_ft_in1k.bin pretrain/vit-b16_in21k-in1k_mmseg.pth
        # (timm/DeiT weights through mmseg's vit2mmseg, position embedding resized to 32 x 40)
        init_cfg=dict(type='Pretrained', checkpoint='pretrain/vit-b16_in21k-in1k_mmseg.pth')),
    neck=dict(
        type='ChannelMapper',
        in_channels=[768],
        kernel_size=1,
        out_channels=256,
        act_cfg=None,
        norm_cfg=None,
        num_outs=1),
    encoder=dict(  # DetrTransformerEncoder
        num_layers=6,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=256, num_heads=8, dropout=0.1, batch_first=True),
            ffn_cfg=dict(
                embed_dims=256,
                feedforward_channels=2048,
                num_fcs=2,
                ffn_drop=0.1,
                act_cfg=dict(type='ReLU', inplace=True)))),
    decoder=dict(  # DetrTransformerDecoder
        num_layers=6,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=256, num_heads=8, dropout=0.1, batch_first=True),
            cross_attn_cfg=dict(embed_dims=256, num_heads=8, dropout=0.1, batch_first=True),
            ffn_cfg=dict(
                embed_dims=256,
                feedforward_channels=2048,
                num_fcs=2,
                ffn_drop=0.1,
                act_cfg=dict(type='ReLU', inplace=True))),
        return_intermediate=True),
    positional_encoding=dict(num_feats=128, normalize=True),
    bbox_head=dict(
        type='DETRHead',
        num_classes=1,  # set per dataset
        embed_dims=256,
        loss_cls=dict(
            type='CrossEntropyLoss',
            bg_cls_weight=0.1,
            use_sigmoid=False,
            loss_weight=1.0,
            class_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=5.0),
        loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='ClassificationCost', weight=1.),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0)
            ])),
    test_cfg=dict(max_per_img=100))
