"""Fusion blocks, one file each, usable outside their paper's model."""
from .gemini_fusion import GeminiFusionAttention

__all__ = ['GeminiFusionAttention']
