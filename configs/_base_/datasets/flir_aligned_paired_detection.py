# FLIR-aligned (FLIR ADAS thermal, aligned subset of Zhang et al., ICIP 2020), RGB + thermal
# detection of person/bicycle/car, as registered pairs for mmfusion's paired detectors
# (method-neutral: plain resize/flip training pipeline; methods wrap or replace
# `train_pipeline`, e.g. with PairedMosaic).
#
# Data preparation (see mmfusion/converters/flir.py; `dog` boxes are dropped):
#   data/FLIR_aligned/align/{JPEGImages,Annotations,align_train.txt,align_validation.txt}
#   python tools/create_data.py flir --root-path data/FLIR_aligned --out-dir data/flir_infos
# Boxes are in thermal pixels; LoadPairedImageFromFile requires the RGB frame to have the thermal
# frame's size (it raises, naming both files, for a pair that does not).
# Validation and test use the `align_validation.txt` split.
# Pipelines, loaders and metric as the LLVIP base; only the data files and classes differ.
_base_ = './llvip_paired_detection.py'
# the json file names are relative to the release root
data_root = '{{ fileDirname }}/../../../data/'  # as the LLVIP base (its loaders keep it)
data_prefix = dict(img='FLIR_aligned/', img_ir='FLIR_aligned/')
train_ann_file = 'flir_infos/flir_infos_train.json'
test_ann_file = 'flir_infos/flir_infos_val.json'
metainfo = dict(
    classes=('person', 'bicycle', 'car'),
    palette=[(220, 20, 60), (119, 11, 32), (0, 0, 142)])

train_dataloader = dict(
    dataset=dict(ann_file=train_ann_file, data_prefix=data_prefix, metainfo=metainfo))
val_dataloader = dict(
    dataset=dict(ann_file=test_ann_file, data_prefix=data_prefix, metainfo=metainfo))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + test_ann_file)
test_evaluator = val_evaluator
