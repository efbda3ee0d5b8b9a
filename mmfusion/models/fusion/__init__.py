"""Fusion blocks, one file each, usable outside their paper's model.

Each module registers into its host's ``MODELS`` when imported (mmdet:
``state_space_channel_swapping``, ``dual_state_space_fusion``,
``fusion_mamba_block``, ``damf_fusion``; mmdet3d: ``gemini_point_fusion``, ``space_alignment``,
``latent_fusion``, ``scale_aligned_fusion``), except ``gemini_fusion``, used by an mmseg and an
mmdet3d model alike, which registers into mmengine's root ``MODELS`` (seen from every scope).
This ``__init__`` imports none of them (see :mod:`mmfusion.models`).
"""
