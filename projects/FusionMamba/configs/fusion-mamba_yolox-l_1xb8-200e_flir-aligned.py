# Fusion-Mamba (YOLOv5-l two-stream backbone with FMBs at P3/P4/P5, YOLOX head) on
# FLIR-aligned (person, bicycle, car).
# Recipe and its sources: ./_base_/fusion-mamba_yolox-l_1xb8-200e.py.
#   python tools/create_data.py flir --root-path data/FLIR_aligned --out-dir data/flir_infos
#   python tools/train.py \
#       projects/FusionMamba/configs/fusion-mamba_yolox-l_1xb8-200e_flir-aligned.py
_base_ = [
    '../../../configs/_base_/datasets/flir_aligned_paired_detection.py',
    './_base_/fusion-mamba_yolox-l_1xb8-200e.py',
]

model = dict(bbox_head=dict(num_classes=3))

train_dataloader = dict(
    dataset=dict(_base_.mosaic_dataset, _delete_=True,
                 dataset=dict(_base_.train_dataloader.dataset,
                              pipeline=_base_.mosaic_loading_pipeline)))
