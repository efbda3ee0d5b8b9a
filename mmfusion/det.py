"""Entry point for mmdet configs: ``custom_imports = dict(imports=['mmfusion.det'])``.

Importing it registers mmfusion's RGB + infrared detection modules into ``mmdet.registry``
and applies the checkpoint-loading fix of :mod:`mmfusion.utils.compat` (mmengine 0.10.7 under
torch>=2.6):

- data: the dataset ``PairedCocoDataset``; the transforms ``LoadPairedImageFromFile``,
  ``PairedResize``, ``PairedRandomFlip``, ``PairedRandomCrop``, ``PairedPad``,
  ``PairedMosaic``, ``InfraredTransform``, ``PackPairedDetInputs``; the degradations
  ``RGBDegradation`` and ``RandomRGBDegradation`` (reusable by every RGB-IR method);
- model side, shared: ``PairedDetDataPreprocessor``, ``PairedSingleStageDetector``;
- Fusion-Mamba: ``SS2D``, ``VSSBlock``, ``StateSpaceChannelSwapping`` (SSCS),
  ``DualStateSpaceFusion`` (DSSF), ``FusionMambaBlock`` (FMB), ``DualStreamCSPDarknet``;
- DAMF: ``DAMFDetector``, ``DistributionAlignedFusion``, ``GMMNegLogLikelihoodLoss``;
- training: the hook ``NormEvalHook`` (into mmengine's ``HOOKS``, seen from every scope).

Paired pipeline, as the Fusion-Mamba/DAMF configs use it::

    train_pipeline = [
        dict(type='LoadPairedImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='PairedResize', scale=(640, 640), keep_ratio=True),
        dict(type='PairedRandomFlip', prob=0.5),
        dict(type='PackPairedDetInputs'),
    ]
"""
from mmfusion.datasets import (InfraredTransform, LoadPairedImageFromFile,  # noqa: F401
                               PackPairedDetInputs, PairedCocoDataset, PairedMosaic,
                               PairedPad, PairedRandomCrop, PairedRandomFlip, PairedResize,
                               RandomRGBDegradation, RGBDegradation)
from mmfusion.engine import NormEvalHook  # noqa: F401
from mmfusion.models.backbones import DualStreamCSPDarknet  # noqa: F401
from mmfusion.models.data_preprocessors import PairedDetDataPreprocessor  # noqa: F401
from mmfusion.models.detectors import DAMFDetector, PairedSingleStageDetector  # noqa: F401
from mmfusion.models.fusion import (DistributionAlignedFusion,  # noqa: F401
                                    DualStateSpaceFusion, FusionMambaBlock,
                                    StateSpaceChannelSwapping)
from mmfusion.models.layers import SS2D, VSSBlock  # noqa: F401
from mmfusion.models.losses import GMMNegLogLikelihoodLoss  # noqa: F401
from mmfusion.utils.compat import restore_mmengine_checkpoint_loading

restore_mmengine_checkpoint_loading()
