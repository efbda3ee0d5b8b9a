# GeminiFusion RGB-D segmentor: a two-modality MiT shared by RGB and depth with GeminiFusion in
# every layer, one SegFormer head shared by both streams, softmax(alpha)-weighted ensemble.
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='RGBDSegDataPreProcessor',
    # RGB: ImageNet statistics (official Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    # depth in metres (EncodeDepth): d / 10 m, about [0, 1] as the official depth / 255
    depth_mean=[0.0, 0.0, 0.0],
    depth_std=[10.0, 10.0, 10.0],
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='GeminiFusionEncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='GeminiMixVisionTransformer',
        arch='b0',
        in_channels=3,
        out_indices=(0, 1, 2, 3),
        qkv_bias=True,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.1,
        # official n_heads=8 in every stage; ablation switches of GeminiFusionAttention
        fusion_cfg=dict(
            num_heads=8,
            use_relation_discriminator=True,
            use_noise=True,
            shared_noise=False)),
    decode_head=dict(
        type='SegformerHead',
        in_channels=[32, 64, 160, 256],
        in_index=[0, 1, 2, 3],
        channels=256,  # official embedding_dim = 256
        dropout_ratio=0.1,
        num_classes=40,
        norm_cfg=norm_cfg,
        align_corners=False,
        # official: NLLLoss(log_softmax) averaged over the non-ignored pixels, on each output
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
            avg_non_ignore=True)),
    detach_ensemble_inputs=True,
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
