"""Data transforms of mmfusion: paired visible/infrared loading, augmentation and degradations
(mmdet registry); RGB-D loading, aligned augmentation and packing (mmseg registry)."""
from .calib_perturbation import PerturbCalibration
from .degradations import RandomRGBDegradation, RGBDegradation
from .depth_loading import EncodeDepth, LoadDepthFromFile
from .pack_paired_inputs import PackPairedDetInputs
from .pack_rgbd_inputs import PackRGBDSegInputs
from .paired_loading import LoadPairedImageFromFile
from .paired_mosaic import PairedMosaic
from .paired_transforms import (InfraredTransform, PairedPad, PairedRandomCrop,
                                PairedRandomFlip, PairedResize)
from .rgbd_transforms import RGBDRandomCrop, RGBDRandomFlip, RGBDResize

__all__ = [
    'LoadPairedImageFromFile', 'PairedResize', 'PairedRandomFlip', 'PairedRandomCrop',
    'PairedPad', 'PairedMosaic', 'InfraredTransform', 'PackPairedDetInputs', 'RGBDegradation',
    'RandomRGBDegradation', 'LoadDepthFromFile', 'EncodeDepth', 'RGBDResize', 'RGBDRandomFlip',
    'RGBDRandomCrop', 'PackRGBDSegInputs', 'PerturbCalibration'
]
