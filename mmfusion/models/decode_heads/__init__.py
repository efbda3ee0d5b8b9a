"""Decode heads: ``segformer_mlp_head`` (mmseg, GeminiFusion's official head). Imported by
``mmfusion.seg``, not here."""
