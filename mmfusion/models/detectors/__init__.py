"""Detectors: ``paired_single_stage`` and ``damf`` (mmdet), ``sslfusion`` (mmdet3d). Imported by
the entry points, not here (see :mod:`mmfusion.models`)."""
