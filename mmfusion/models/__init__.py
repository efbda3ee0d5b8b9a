"""Fusion blocks, layers, backbones, detectors, segmentors, losses and data preprocessors of
mmfusion; each registers into its host library's registry when imported (see the entry points
``mmfusion.det``, ``mmfusion.det3d``, ``mmfusion.seg``)."""
from .fusion import GeminiFusionAttention
from .layers import SS2D, VSSBlock
from .segmentors import GeminiFusionEncoderDecoder

__all__ = ['GeminiFusionAttention', 'SS2D', 'VSSBlock', 'GeminiFusionEncoderDecoder']
