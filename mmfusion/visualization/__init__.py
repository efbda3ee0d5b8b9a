"""Visualizers: ``camera_view_visualizer`` (mmdet3d). Imported by ``mmfusion.det3d``."""
