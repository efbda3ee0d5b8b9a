"""Entry point for mmdet configs: ``custom_imports = dict(imports=['mmfusion.det'])``.

Importing it registers mmfusion's RGB + infrared detection modules (Fusion-Mamba, DAMF) into
``mmdet.registry``: the dataset ``PairedCocoDataset``; the transforms
``LoadPairedImageFromFile``, ``PairedResize``, ``PairedRandomFlip``, ``PairedRandomCrop``,
``PairedPad``, ``InfraredTransform``, ``PackPairedDetInputs``; the model-side
``PairedDetDataPreprocessor``; the state-space layers ``SS2D`` and ``VSSBlock`` (Fusion-Mamba).
It also applies the checkpoint-loading fix of :mod:`mmfusion.utils.compat` (mmengine 0.10.7
under torch>=2.6).

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
                               PackPairedDetInputs, PairedCocoDataset, PairedPad,
                               PairedRandomCrop, PairedRandomFlip, PairedResize)
from mmfusion.models.data_preprocessors import PairedDetDataPreprocessor  # noqa: F401
from mmfusion.models.layers import SS2D, VSSBlock  # noqa: F401
from mmfusion.utils.compat import restore_mmengine_checkpoint_loading

restore_mmengine_checkpoint_loading()
