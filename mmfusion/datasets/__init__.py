"""Dataset classes and data transforms of mmfusion."""
from .paired_coco import PairedCocoDataset
from .transforms import (InfraredTransform, LoadPairedImageFromFile, PackPairedDetInputs,
                         PairedPad, PairedRandomCrop, PairedRandomFlip, PairedResize)

__all__ = [
    'PairedCocoDataset', 'LoadPairedImageFromFile', 'PairedResize', 'PairedRandomFlip',
    'PairedRandomCrop', 'PairedPad', 'InfraredTransform', 'PackPairedDetInputs'
]
