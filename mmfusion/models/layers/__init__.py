"""Building blocks shared by several models: SS2D and the VSS block (VMamba v0).

Host-neutral: registered into mmengine's root ``MODELS``, so ``type='SS2D'`` builds from the
mmdet, mmseg and mmdet3d scopes alike, and importing them loads no host library."""
from .ss2d import SS2D, cross_merge, cross_scan
from .vss_block import VSSBlock

__all__ = ['SS2D', 'VSSBlock', 'cross_scan', 'cross_merge']
