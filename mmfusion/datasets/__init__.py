"""Dataset classes and data transforms of mmfusion."""
from .nyudv2 import NYUDv2Dataset
from .paired_coco import PairedCocoDataset
from .transforms import (InfraredTransform, LoadPairedImageFromFile, PackPairedDetInputs,
                         PairedMosaic, PairedPad, PairedRandomCrop, PairedRandomFlip,
                         PairedResize, RandomRGBDegradation, RGBDegradation)

__all__ = [
    'PairedCocoDataset', 'NYUDv2Dataset', 'LoadPairedImageFromFile', 'PairedResize',
    'PairedRandomFlip', 'PairedRandomCrop', 'PairedPad', 'PairedMosaic', 'InfraredTransform',
    'PackPairedDetInputs', 'RGBDegradation', 'RandomRGBDegradation'
]
