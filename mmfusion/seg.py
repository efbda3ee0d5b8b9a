"""Entry point for mmseg configs: ``custom_imports = dict(imports=['mmfusion.seg'])``.

Importing it registers mmfusion's RGB+depth segmentation modules into ``mmseg.registry`` (today
the ``GeminiFusionAttention`` block) and applies the checkpoint-loading fix of
:mod:`mmfusion.utils.compat` (mmengine 0.10.7 under torch>=2.6).
"""
from mmfusion.models.fusion import GeminiFusionAttention  # noqa: F401  (registers it)
from mmfusion.utils.compat import restore_mmengine_checkpoint_loading

restore_mmengine_checkpoint_loading()
