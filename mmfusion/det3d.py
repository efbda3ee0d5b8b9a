"""Entry point for mmdet3d configs: ``custom_imports = dict(imports=['mmfusion.det3d'])``.

Importing it registers mmfusion's LiDAR+camera modules into ``mmdet3d.registry`` and installs
the CPU fallbacks of :mod:`mmfusion.ops.cpu_fallbacks`, so that stock mmdet3d configs whose
modules call CUDA-only mmcv ops train and infer on CPU.
"""
from mmfusion.ops.cpu_fallbacks import install_cpu_fallbacks

CPU_FALLBACKS = install_cpu_fallbacks()
