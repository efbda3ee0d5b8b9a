"""Visualizers and hooks, each imported by its host's entry point (this package imports nothing):

- ``camera_view_visualizer`` (``mmfusion.det3d``): camera view + bird's-eye view of LiDAR frames
  without open3d;
- ``paired_det_visualizer`` (``mmfusion.det``): RGB + infrared detections on both images;
- ``rgbd_seg_visualizer``, ``seg_visualization_hook`` (``mmfusion.seg``): RGB-D segmentation
  pictures, test pictures under ``test_out_dir``.
"""
