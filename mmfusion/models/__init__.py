"""Fusion blocks, detectors, backbones and heads of mmfusion."""
from .fusion import GeminiFusionAttention

__all__ = ['GeminiFusionAttention']
