"""Building blocks shared by several models: SS2D and the VSS block (VMamba v0)."""
from .ss2d import SS2D, cross_merge, cross_scan
from .vss_block import VSSBlock

__all__ = ['SS2D', 'VSSBlock', 'cross_scan', 'cross_merge']
