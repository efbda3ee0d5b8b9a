"""mmfusion: multimodal-fusion perception on the OpenMMLab stack.

Importing ``mmfusion`` itself registers nothing. Import the host module that a config needs,
usually through ``custom_imports``:

- ``mmfusion.det3d``: LiDAR+camera modules into ``mmdet3d.registry`` (and the CPU op fallbacks);
- ``mmfusion.det``: RGB+infrared detection modules (paired data pipeline) into ``mmdet.registry``;
- ``mmfusion.seg``: RGB+depth segmentation modules (GeminiFusion block) into ``mmseg.registry``.
"""
from .version import __version__

__all__ = ['__version__']
