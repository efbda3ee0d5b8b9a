"""Models of mmfusion, one subpackage per kind (``fusion``, ``layers``, ``backbones``,
``detectors``, ``segmentors``, ``roi_heads``, ``middle_encoders``, ``losses``,
``data_preprocessors``).

This package and its host-bound subpackages import nothing on their own: a module registers into
its host library's registry when the entry point of that host (``mmfusion.det``,
``mmfusion.det3d``, ``mmfusion.seg``) imports it, so that loading one host never loads another.
Import a class from its module, e.g.
``from mmfusion.models.fusion.state_space_channel_swapping import StateSpaceChannelSwapping``.
``mmfusion.models.layers`` is host-neutral and exports its layers.

File names: one module per block, named with the block's words spelled out in snake case
(``state_space_channel_swapping.py`` for SSCS, ``scale_aligned_fusion.py`` for SAF,
``gemini_mix_vision_transformer.py`` for GeminiFusion's MiT); the papers' acronyms (SSCS, DSSF,
SAF, SAM, LFM, FMB) are used in docstrings. A method's own name (``sslfusion``, ``damf``,
``gemini``) and layer names known only by their acronym in the literature (``ss2d``, ``vss``,
``rcnn``, ``roi``, ``vfe``, ``nll``) count as words.
"""
