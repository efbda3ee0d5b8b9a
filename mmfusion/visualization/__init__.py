from .camera_view_visualizer import CameraViewDet3DVisualizer

__all__ = ['CameraViewDet3DVisualizer']
