"""Entry point for mmdet3d configs: ``custom_imports = dict(imports=['mmfusion.det3d'])``.

Importing it registers mmfusion's LiDAR+camera modules into ``mmdet3d.registry``:
``GeminiPointFusion`` (GeminiFusion's drop-in for MVX-Net's ``PointFusion``) and
``GeminiDynamicVFE`` (its two-layer fusion voxel encoder), SSLFusion's
``SpaceAlignment`` (SAM), ``LatentCrossModalFusion`` (LFM), ``SSLFusionLayer`` and
``ScaleAlignedFusion`` (SAF), ``SSLFusionSparseUNet``, ``SSLFusion``, ``VoxelRCNNRoIHead``,
``VoxelRCNNBBoxHead`` and ``VoxelRoIGridPooling``, the transforms ``MultiModalObjectSample`` and
``MultiModalDataBaseSampler`` (GT sampling into points and image), the
``CameraViewDet3DVisualizer``, and the training hooks ``NormEvalHook``
and ``RandomStateHook`` (into mmengine's ``HOOKS``). It installs the CPU fallbacks of
:mod:`mmfusion.ops.cpu_fallbacks`, so that stock mmdet3d configs whose modules
call CUDA-only kernels train, infer and evaluate on CPU, and applies the two compatibility fixes
of :mod:`mmfusion.utils.compat` (checkpoint loading under torch>=2.6, ``np.long``).
"""
# Registration: importing each module registers its classes (into mmdet3d's registries, or into
# mmengine's root registries for the host-neutral hooks).
from mmfusion.datasets.transforms import calib_perturbation  # noqa: F401
from mmfusion.datasets.transforms import multimodal_object_sample  # noqa: F401
from mmfusion.engine.hooks import norm_eval_hook, random_state_hook  # noqa: F401
from mmfusion.models.detectors import sslfusion  # noqa: F401
from mmfusion.models.fusion import (gemini_point_fusion, latent_fusion,  # noqa: F401
                                    scale_aligned_fusion, space_alignment)
from mmfusion.models.middle_encoders import sslfusion_sparse_unet  # noqa: F401
from mmfusion.models.roi_heads import (voxel_rcnn_bbox_head, voxel_rcnn_roi_head,  # noqa: F401
                                       voxel_roi_pooling)
from mmfusion.models.voxel_encoders import gemini_dynamic_vfe  # noqa: F401
from mmfusion.ops.cpu_fallbacks import install_cpu_fallbacks
from mmfusion.utils.compat import restore_mmengine_checkpoint_loading, restore_numpy_long
from mmfusion.visualization import camera_view_visualizer  # noqa: F401

CPU_FALLBACKS = install_cpu_fallbacks()
restore_mmengine_checkpoint_loading()
restore_numpy_long()
