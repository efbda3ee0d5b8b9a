"""Entry point for mmdet configs: ``custom_imports = dict(imports=['mmfusion.det'])``.

Importing it registers mmfusion's RGB + infrared detection modules into ``mmdet.registry``
and applies the checkpoint-loading fix of :mod:`mmfusion.utils.compat` (mmengine 0.10.7 under
torch>=2.6):

- data: the dataset ``PairedCocoDataset``; the transforms ``LoadPairedImageFromFile``,
  ``PairedResize``, ``PairedRandomFlip``, ``PairedRandomCrop``, ``PairedPad``,
  ``PairedRandomAffine``, ``PairedMosaic``, ``InfraredTransform``, ``PackPairedDetInputs``; the
  degradations ``RGBDegradation`` and ``RandomRGBDegradation`` (reusable by every RGB-IR method);
- model side, shared: ``PairedDetDataPreprocessor``, ``PairedSingleStageDetector``;
- Fusion-Mamba: ``SS2D``, ``VSSBlock``, ``StateSpaceChannelSwapping`` (SSCS),
  ``DualStateSpaceFusion`` (DSSF), ``FusionMambaBlock`` (FMB), ``DualStreamCSPDarknet``;
- DAMF: ``DAMFDetector``, ``DistributionAlignedFusion``, ``GMMNegLogLikelihoodLoss``;
- training: the hooks ``NormEvalHook`` and ``RandomStateHook`` and the optimizer wrapper
  constructor ``YOLOv5OptimWrapperConstructor`` (into mmengine's root registries, seen from every
  scope);
- visualization: ``PairedDetLocalVisualizer`` (GT and predictions on both images).

Paired pipeline, as the Fusion-Mamba/DAMF configs use it::

    train_pipeline = [
        dict(type='LoadPairedImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='PairedResize', scale=(640, 640), keep_ratio=True),
        dict(type='PairedRandomFlip', prob=0.5),
        dict(type='PackPairedDetInputs'),
    ]
"""
# Registration: importing each module registers its classes (into mmdet's registries, or into
# mmengine's root registries for the host-neutral layers and hooks).
from mmfusion.datasets import paired_coco  # noqa: F401
from mmfusion.datasets.transforms import (degradations, pack_paired_inputs,  # noqa: F401
                                          paired_loading, paired_mosaic, paired_transforms)
from mmfusion.engine.hooks import norm_eval_hook, random_state_hook  # noqa: F401
from mmfusion.engine.optimizers import yolov5_optim_wrapper_constructor  # noqa: F401
from mmfusion.models.backbones import dual_stream_csp_darknet  # noqa: F401
from mmfusion.models.data_preprocessors import paired_data_preprocessor  # noqa: F401
from mmfusion.models.detectors import damf, paired_single_stage  # noqa: F401
from mmfusion.models.fusion import (damf_fusion, dual_state_space_fusion,  # noqa: F401
                                    fusion_mamba_block, state_space_channel_swapping)
from mmfusion.models.layers import ss2d, vss_block  # noqa: F401
from mmfusion.models.losses import gmm_nll_loss  # noqa: F401
from mmfusion.utils.compat import restore_mmengine_checkpoint_loading
from mmfusion.visualization import paired_det_visualizer  # noqa: F401

restore_mmengine_checkpoint_loading()
