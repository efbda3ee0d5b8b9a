"""Backbones: ``dual_stream_csp_darknet`` (mmdet, Fusion-Mamba) and
``gemini_mix_vision_transformer`` (mmseg, GeminiFusion). Imported by the entry points, not here
(see :mod:`mmfusion.models`)."""
