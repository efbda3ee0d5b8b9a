"""Fusion blocks, one file each, usable outside their paper's model.

Host-bound: each module registers into its host's ``MODELS`` when imported (mmdet:
``sscs``, ``dssf``, ``fusion_mamba_block``, ``damf_fusion``; mmseg: ``gemini_fusion``;
mmdet3d: ``gemini_point_fusion``, ``space_alignment``, ``latent_fusion``,
``scale_aligned_fusion``). This ``__init__`` imports none of them (see :mod:`mmfusion.models`).
"""
