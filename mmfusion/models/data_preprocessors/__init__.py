"""Data preprocessors of mmfusion: ``PairedDetDataPreprocessor`` (mmdet registry, RGB + infrared)
and ``RGBDSegDataPreProcessor`` (mmseg registry, RGB + depth)."""
from .paired_data_preprocessor import PairedDetDataPreprocessor
from .rgbd_seg_data_preprocessor import RGBDSegDataPreProcessor

__all__ = ['PairedDetDataPreprocessor', 'RGBDSegDataPreProcessor']
