"""Data preprocessors of mmfusion (mmdet registry)."""
from .paired_data_preprocessor import PairedDetDataPreprocessor

__all__ = ['PairedDetDataPreprocessor']
