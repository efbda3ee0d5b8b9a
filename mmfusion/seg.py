"""Entry point for mmseg configs: ``custom_imports = dict(imports=['mmfusion.seg'])``.

Importing it registers mmfusion's RGB + depth segmentation modules (GeminiFusion) into
``mmseg.registry`` and applies the checkpoint-loading fix of :mod:`mmfusion.utils.compat`
(mmengine 0.10.7 under torch>=2.6):

- data: ``NYUDv2Dataset``; the transforms ``LoadDepthFromFile``, ``EncodeDepth``,
  ``RGBDResize``, ``RGBDRandomCrop``, ``RGBDRandomFlip``, ``PackRGBDSegInputs``;
- model: ``RGBDSegDataPreProcessor``, ``GeminiFusionAttention``,
  ``GeminiMixVisionTransformer``, ``GeminiFusionEncoderDecoder``, ``SegformerMLPHead``;
- evaluation: ``MultiOutputIoUMetric`` (mIoU/mAcc/aAcc of the rgb, depth and ensemble outputs);
- training: the hooks ``NormEvalHook``, ``RandomStateHook`` and ``OptimizerResetHook`` (into
  mmengine's ``HOOKS``, seen from every scope);
- visualization: ``RGBDSegLocalVisualizer`` (overlay, depth panel, legend) and
  ``SegOutDirVisualizationHook`` (test pictures under ``test_out_dir``).
"""
# Registration: importing each module registers its classes (into mmseg's registries, or into
# mmengine's root registries for the host-neutral hooks).
from mmfusion.datasets import nyudv2  # noqa: F401
from mmfusion.datasets.transforms import (depth_loading, pack_rgbd_inputs,  # noqa: F401
                                          rgbd_transforms)
from mmfusion.engine.hooks import (norm_eval_hook, optimizer_reset_hook,  # noqa: F401
                                   random_state_hook)
from mmfusion.evaluation import multi_output_iou_metric  # noqa: F401
from mmfusion.models.backbones import gemini_mix_vision_transformer  # noqa: F401
from mmfusion.models.data_preprocessors import rgbd_seg_data_preprocessor  # noqa: F401
from mmfusion.models.decode_heads import segformer_mlp_head  # noqa: F401
from mmfusion.models.fusion import gemini_fusion  # noqa: F401
from mmfusion.models.segmentors import gemini_fusion_encoder_decoder  # noqa: F401
from mmfusion.utils.compat import restore_mmengine_checkpoint_loading
from mmfusion.visualization import rgbd_seg_visualizer, seg_visualization_hook  # noqa: F401

restore_mmengine_checkpoint_loading()
