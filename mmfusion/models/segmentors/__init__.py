"""Segmentors of mmfusion (mmseg registry)."""
from .gemini_fusion_encoder_decoder import GeminiFusionEncoderDecoder

__all__ = ['GeminiFusionEncoderDecoder']
