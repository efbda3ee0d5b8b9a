"""Models of mmfusion, one subpackage per kind (``fusion``, ``layers``, ``backbones``,
``detectors``, ``segmentors``, ``roi_heads``, ``middle_encoders``, ``losses``,
``data_preprocessors``).

This package and its host-bound subpackages import nothing on their own: a module registers into
its host library's registry when the entry point of that host (``mmfusion.det``,
``mmfusion.det3d``, ``mmfusion.seg``) imports it, so that loading one host never loads another.
Import a class from its module, e.g. ``from mmfusion.models.fusion.sscs import
StateSpaceChannelSwapping``. ``mmfusion.models.layers`` is host-neutral and exports its layers.

File names: the spelled-out name of the block in snake case (``scale_aligned_fusion.py``,
``space_alignment.py``), or the paper's acronym where the paper names the block only by it
(``sscs.py``, ``dssf.py``, ``ss2d.py``, ``gemini_mit.py``).
"""
