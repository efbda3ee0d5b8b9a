# M3FD (Liu et al., CVPR 2022, TarDAL), visible + infrared detection of six classes, as
# registered pairs for mmfusion's paired detectors (method-neutral: plain resize/flip training
# pipeline; methods wrap or replace `train_pipeline`, e.g. with PairedMosaic).
#
# Data preparation (see mmfusion/converters/m3fd.py; M3FD has no official split, the converter
# makes a reproducible per-scene train/val split):
#   data/M3FD/{Vis,Ir,Annotation}/...  (flat release, or the per-scene layout)
#   python tools/create_data.py m3fd --root-path data/M3FD --out-dir data/m3fd_infos
# Validation and test use the converter's val split.
# Pipelines, loaders and metric as the LLVIP base; only the data files and classes differ.
_base_ = './llvip_paired_detection.py'
# the json file names are relative to the release root
data_root = '{{ fileDirname }}/../../../data/'  # as the LLVIP base (its loaders keep it)
data_prefix = dict(img='M3FD/', img_ir='M3FD/')
train_ann_file = 'm3fd_infos/m3fd_infos_train.json'
test_ann_file = 'm3fd_infos/m3fd_infos_val.json'
metainfo = dict(
    classes=('People', 'Car', 'Bus', 'Motorcycle', 'Lamp', 'Truck'),
    palette=[(220, 20, 60), (0, 0, 142), (0, 60, 100), (0, 0, 230), (250, 170, 30),
             (0, 0, 70)])

train_dataloader = dict(
    dataset=dict(ann_file=train_ann_file, data_prefix=data_prefix, metainfo=metainfo))
val_dataloader = dict(
    dataset=dict(ann_file=test_ann_file, data_prefix=data_prefix, metainfo=metainfo))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + test_ann_file)
test_evaluator = val_evaluator
