"""Voxel encoders: ``gemini_dynamic_vfe`` (mmdet3d, GeminiFusion's two-layer fusion). Imported by
``mmfusion.det3d``, not here."""
