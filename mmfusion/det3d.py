"""Entry point for mmdet3d configs: ``custom_imports = dict(imports=['mmfusion.det3d'])``.

Importing it registers mmfusion's LiDAR+camera modules into ``mmdet3d.registry``:
``GeminiPointFusion`` (GeminiFusion's drop-in for MVX-Net's ``PointFusion``), SSLFusion's
``SpaceAlignment`` (SAM), ``LatentCrossModalFusion`` (LFM), ``SSLFusionLayer`` and
``ScaleAlignedFusion`` (SAF), the ``CameraViewDet3DVisualizer``, and the training hook
``NormEvalHook`` (into mmengine's ``HOOKS``). It installs the CPU
fallbacks of :mod:`mmfusion.ops.cpu_fallbacks`, so that stock mmdet3d configs whose modules
call CUDA-only kernels train, infer and evaluate on CPU, and applies the two compatibility fixes
of :mod:`mmfusion.utils.compat` (checkpoint loading under torch>=2.6, ``np.long``).
"""
from mmfusion.datasets.transforms import PerturbCalibration  # noqa: F401  (registers it)
from mmfusion.engine import NormEvalHook  # noqa: F401  (registers it)
from mmfusion.models.fusion import (GeminiPointFusion, LatentCrossModalFusion,  # noqa: F401
                                    ScaleAlignedFusion, SpaceAlignment, SSLFusionLayer)
from mmfusion.models.detectors.sslfusion import SSLFusion  # noqa: F401
from mmfusion.models.middle_encoders import SSLFusionSparseUNet  # noqa: F401
from mmfusion.models.roi_heads import VoxelRCNNRoIHead, VoxelRoIGridPooling  # noqa: F401
from mmfusion.ops.cpu_fallbacks import install_cpu_fallbacks
from mmfusion.utils.compat import restore_mmengine_checkpoint_loading, restore_numpy_long
from mmfusion.visualization import CameraViewDet3DVisualizer  # noqa: F401  (registers it)

CPU_FALLBACKS = install_cpu_fallbacks()
restore_mmengine_checkpoint_loading()
restore_numpy_long()
