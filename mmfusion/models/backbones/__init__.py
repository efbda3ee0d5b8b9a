"""Backbones of mmfusion: ``DualStreamCSPDarknet`` (mmdet registry, Fusion-Mamba) and
``GeminiMixVisionTransformer`` (mmseg registry, GeminiFusion)."""
from .dual_stream_csp_darknet import DualStreamCSPDarknet
from .gemini_mit import GeminiMixVisionTransformer

__all__ = ['DualStreamCSPDarknet', 'GeminiMixVisionTransformer']
