"""Entry point for mmseg configs: ``custom_imports = dict(imports=['mmfusion.seg'])``.

Importing it registers mmfusion's RGB + depth segmentation modules (GeminiFusion) into
``mmseg.registry`` and applies the checkpoint-loading fix of :mod:`mmfusion.utils.compat`
(mmengine 0.10.7 under torch>=2.6):

- data: ``NYUDv2Dataset``; the transforms ``LoadDepthFromFile``, ``EncodeDepth``,
  ``RGBDResize``, ``RGBDRandomCrop``, ``RGBDRandomFlip``, ``PackRGBDSegInputs``;
- model: ``RGBDSegDataPreProcessor``, ``GeminiFusionAttention``,
  ``GeminiMixVisionTransformer``, ``GeminiFusionEncoderDecoder``;
- evaluation: ``MultiOutputIoUMetric`` (mIoU/mAcc/aAcc of the rgb, depth and ensemble outputs);
- training: the hook ``NormEvalHook`` (into mmengine's ``HOOKS``, seen from every scope).
"""
from mmfusion.datasets import NYUDv2Dataset  # noqa: F401
from mmfusion.datasets.transforms import (EncodeDepth, LoadDepthFromFile,  # noqa: F401
                                          PackRGBDSegInputs, RGBDRandomCrop, RGBDRandomFlip,
                                          RGBDResize)
from mmfusion.engine import NormEvalHook  # noqa: F401
from mmfusion.evaluation import MultiOutputIoUMetric  # noqa: F401
from mmfusion.models.backbones import GeminiMixVisionTransformer  # noqa: F401
from mmfusion.models.data_preprocessors import RGBDSegDataPreProcessor  # noqa: F401
from mmfusion.models.fusion import GeminiFusionAttention  # noqa: F401
from mmfusion.models.segmentors import GeminiFusionEncoderDecoder  # noqa: F401
from mmfusion.utils.compat import restore_mmengine_checkpoint_loading

restore_mmengine_checkpoint_loading()
