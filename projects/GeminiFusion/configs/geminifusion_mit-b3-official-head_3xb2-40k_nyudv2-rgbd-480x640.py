# GeminiFusion, MiT-B3, NYUDv2, with the official decode head (SegformerMLPHead: a plain
# Linear per level, concatenation c4..c1, as github.com/JiaDingCN/GeminiFusion's SegFormerHead),
# so that the released official checkpoint evaluates to the official logits in mmfusion.
# Everything else as geminifusion_mit-b3_3xb2-40k_nyudv2-rgbd-480x640.py.
#   python tools/model_converters/geminifusion_official_to_mmfusion.py \
#       mit-b3.pth.tar checkpoints/geminifusion_mit-b3_nyudv2_official.pth \
#       --config projects/GeminiFusion/configs/<this file>
#   python tools/test.py projects/GeminiFusion/configs/<this file> \
#       checkpoints/geminifusion_mit-b3_nyudv2_official.pth
# Official checkpoint (download once, nothing is fetched at run time):
#   https://github.com/JiaDingCN/GeminiFusion/releases/download/NYUDv2_V2/mit-b3.pth.tar
_base_ = './geminifusion_mit-b3_3xb2-40k_nyudv2-rgbd-480x640.py'
model = dict(
    # every weight comes from the converted checkpoint, no ImageNet initialisation
    backbone=dict(init_cfg=None),
    decode_head=dict(type='SegformerMLPHead'))
load_from = 'checkpoints/geminifusion_mit-b3_nyudv2_official.pth'
