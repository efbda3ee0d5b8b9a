# Fusion-Mamba on FLIR-aligned, starting from an official checkpoint
# (github.com/EhanDong/Fusion-Mamba):
# the FMBs' DSSF computes exactly what the official CrossLayer computes (official_dssf=True:
# blocks not chained, infrared gating from the mixed RGB result), so the converted streams and
# FMBs give the features they gave when trained; the YOLOX neck and head are trained from
# scratch (the official YOLOv5 anchor head has no counterpart). Everything else as
# fusion-mamba_yolox-l_1xb8-200e_flir-aligned.py.
_base_ = ['./fusion-mamba_yolox-l_1xb8-200e_flir-aligned.py']

model = dict(backbone=dict(fusion_cfg=dict(official_dssf=True)))
# An official state dict converted once (nothing is downloaded at run time):
#   python tools/model_converters/fusion_mamba_official_to_mmfusion.py \
#       best_state_dict.pth checkpoints/fusion-mamba_flir-aligned_official.pth
load_from = 'checkpoints/fusion-mamba_flir-aligned_official.pth'
# only the last of the 8 DSSF blocks of each FMB is used (official loop): DDP must allow
# parameters without gradients
find_unused_parameters = True
