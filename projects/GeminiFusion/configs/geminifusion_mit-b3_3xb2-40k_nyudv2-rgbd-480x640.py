# GeminiFusion, MiT-B3, NYUDv2 RGB-D (40 classes), 480x640: the paper's NYUDv2 setting.
# Paper (Jia et al., ICML 2024) / official README: MiT-B3 56.8 mIoU (ensemble output).
# Official command: main.py --backbone mit_b3 --dataset nyudv2 on 3 GPUs, batch 2 each, default
# --dpr 0.4 (drop path), --n_heads 8 (fusion heads), 3 x 100 epochs (39600 iterations), lr 6e-5
# / 3e-5 / 1.5e-5 with warm-up and poly decay per stage (see the schedule base).
_base_ = [
    './_base_/models/geminifusion_mit-b0.py',
    './_base_/datasets/nyudv2_rgbd-480x640.py',
    'mmseg::_base_/default_runtime.py',
    './_base_/schedules/geminifusion_3stage_40k.py',
]
custom_imports = dict(imports=['mmfusion.seg'], allow_failed_imports=False)
crop_size = (480, 640)
data_preprocessor = dict(size=crop_size)
# ImageNet-1k MiT-B3 weights in mmseg's format (the official code loads the same SegFormer
# weights, NVIDIA's format); the single norms are copied into both modality norms.
# Nothing is downloaded at run time: fetch the file once from
# https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segformer/mit_b3_20220624-13b1141c.pth
# into checkpoints/ (or point this at your copy).
# Or convert NVIDIA's mit_b3.pth (the file the official code loads) once:
#   python tools/model_converters/mit_to_gemini_mit.py mit_b3.pth \
#       checkpoints/mit_b3_gemini.pth --config <this file>
checkpoint = 'checkpoints/mit_b3_20220624-13b1141c.pth'
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        arch='b3',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    decode_head=dict(in_channels=[64, 128, 320, 512]))
