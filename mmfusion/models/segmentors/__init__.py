"""Segmentors: ``gemini_fusion_encoder_decoder`` (mmseg). Imported by ``mmfusion.seg``, not
here."""
