"""Detectors of mmfusion (mmdet registry)."""
from .damf import DAMFDetector
from .paired_single_stage import PairedSingleStageDetector

__all__ = ['DAMFDetector', 'PairedSingleStageDetector']
