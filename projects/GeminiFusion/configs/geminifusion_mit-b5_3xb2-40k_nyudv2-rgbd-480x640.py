# GeminiFusion, MiT-B5, NYUDv2 RGB-D, 480x640. Paper / official README: 57.7 mIoU (ensemble).
# Official command: main.py --backbone mit_b5 --dataset nyudv2 --dpr 0.35 (3 GPUs x 2); the
# rest as MiT-B3.
_base_ = './geminifusion_mit-b3_3xb2-40k_nyudv2-rgbd-480x640.py'
# Nothing is downloaded at run time: fetch the file once from
# https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segformer/mit_b5_20220624-658746d9.pth
# into checkpoints/ (or point this at your copy).
# Or convert NVIDIA's mit_b5.pth (the file the official code loads) once:
#   python tools/model_converters/mit_to_gemini_mit.py mit_b5.pth \
#       checkpoints/mit_b5_gemini.pth --config <this file>
checkpoint = 'checkpoints/mit_b5_20220624-658746d9.pth'
model = dict(
    backbone=dict(
        arch='b5',
        drop_path_rate=0.35,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
