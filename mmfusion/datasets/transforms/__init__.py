"""Data transforms of mmfusion (mmdet registry): paired visible/infrared loading, augmentation."""
from .pack_paired_inputs import PackPairedDetInputs
from .paired_loading import LoadPairedImageFromFile
from .paired_transforms import (InfraredTransform, PairedPad, PairedRandomCrop,
                                PairedRandomFlip, PairedResize)

__all__ = [
    'LoadPairedImageFromFile', 'PairedResize', 'PairedRandomFlip', 'PairedRandomCrop',
    'PairedPad', 'InfraredTransform', 'PackPairedDetInputs'
]
