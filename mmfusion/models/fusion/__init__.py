"""Fusion blocks, one file each, usable outside their paper's model."""
from .damf_fusion import DistributionAlignedFusion
from .dssf import DualStateSpaceFusion, DualStateSpaceFusionBlock
from .fusion_mamba_block import FusionMambaBlock
from .gemini_fusion import GeminiFusionAttention
from .gemini_point_fusion import GeminiPointFusion
from .latent_fusion import LatentCrossModalFusion
from .scale_aligned_fusion import ScaleAlignedFusion, SSLFusionLayer
from .space_alignment import SpaceAlignment
from .sscs import StateSpaceChannelSwapping

__all__ = [
    'GeminiFusionAttention', 'GeminiPointFusion', 'StateSpaceChannelSwapping',
    'DualStateSpaceFusion', 'DualStateSpaceFusionBlock', 'FusionMambaBlock',
    'DistributionAlignedFusion', 'LatentCrossModalFusion', 'SpaceAlignment',
    'ScaleAlignedFusion', 'SSLFusionLayer'
]
