# Fusion-Mamba (YOLOv5-l two-stream backbone with FMBs at P3/P4/P5, YOLOX head) on LLVIP
# (person). Recipe and its sources: ./_base_/fusion-mamba_yolox-l_1xb8-200e.py.
#   python tools/create_data.py llvip --root-path data/LLVIP --out-dir data/llvip_infos
#   python tools/train.py projects/FusionMamba/configs/fusion-mamba_yolox-l_1xb8-200e_llvip.py
_base_ = [
    '../../../configs/_base_/datasets/llvip_paired_detection.py',
    './_base_/fusion-mamba_yolox-l_1xb8-200e.py',
]

model = dict(bbox_head=dict(num_classes=1))

train_dataloader = dict(
    dataset=dict(_base_.mosaic_dataset, _delete_=True,
                 dataset=dict(_base_.train_dataloader.dataset,
                              pipeline=_base_.mosaic_loading_pipeline)))
