# Fusion-Mamba (YOLOv5-l two-stream backbone with FMBs at P3/P4/P5, YOLOX head) on
# M3FD (People, Car, Bus, Motorcycle, Lamp, Truck).
# Recipe and its sources: ./_base_/fusion-mamba_yolox-l_1xb8-200e.py.
#   python tools/create_data.py m3fd --root-path data/M3FD --out-dir data/m3fd_infos
#   python tools/train.py projects/FusionMamba/configs/fusion-mamba_yolox-l_1xb8-200e_m3fd.py
_base_ = [
    '../../../configs/_base_/datasets/m3fd_paired_detection.py',
    './_base_/fusion-mamba_yolox-l_1xb8-200e.py',
]

model = dict(bbox_head=dict(num_classes=6))

train_dataloader = dict(
    dataset=dict(_base_.mosaic_dataset, _delete_=True,
                 dataset=dict(_base_.train_dataloader.dataset,
                              pipeline=_base_.mosaic_loading_pipeline)))
