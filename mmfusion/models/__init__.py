"""Fusion blocks, layers, detectors, backbones and heads of mmfusion."""
from .fusion import GeminiFusionAttention
from .layers import SS2D, VSSBlock

__all__ = ['GeminiFusionAttention', 'SS2D', 'VSSBlock']
