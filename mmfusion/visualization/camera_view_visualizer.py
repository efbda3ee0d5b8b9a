"""mmdet3d's ``Det3DLocalVisualizer`` with projected boxes limited to those in front of the camera.

mmdet3d 1.4's ``draw_proj_bboxes_3d`` projects all eight corners of every box through
``lidar2img`` / ``cam2img`` / ``depth2img`` and divides by depth; a box with a corner behind the
image plane gets corners at huge or sign-flipped pixel coordinates, and its filled polygon covers
the whole picture (measured: a LiDAR box 5 m behind the sensor turns the KITTI frame white). This
subclass drops, before the stock drawing, every box with a corner less than ``min_depth`` metres
in front of the camera, as KITTI's own camera-view renderings do; everything else is the stock
visualizer. It also accepts a single edge colour together with ``img_size`` (the stock method
indexes the colours per box there and fails on a colour string).
"""
import numpy as np
from mmdet3d.registry import VISUALIZERS
from mmdet3d.structures import CameraInstance3DBoxes, DepthInstance3DBoxes
from mmdet3d.visualization import Det3DLocalVisualizer

# box type -> key of its 3D-to-image matrix in the sample's meta (as mmdet3d's projections use)
_PROJECTION_KEY = ((DepthInstance3DBoxes, 'depth2img'), (CameraInstance3DBoxes, 'cam2img'))


def corner_depths(bboxes_3d, input_meta):
    """Camera depth (metres) of each box corner.

    Args:
        bboxes_3d (BaseInstance3DBoxes): N boxes; LiDAR boxes use ``input_meta['lidar2img']``.
        input_meta (dict): Holds the (3, 3) or (4, 4) matrix of the box type.

    Returns:
        np.ndarray: (N, 8) depths along the camera's optical axis.
    """
    key = next((k for cls, k in _PROJECTION_KEY if isinstance(bboxes_3d, cls)), 'lidar2img')
    mat = np.asarray(input_meta[key], dtype=np.float64)
    row = mat[2]  # the depth row: [r31, r32, r33(, t3)]
    corners = bboxes_3d.corners.detach().cpu().numpy().astype(np.float64)  # (N, 8, 3)
    return corners @ row[:3] + (row[3] if row.shape[0] == 4 else 0.0)


@VISUALIZERS.register_module()
class CameraViewDet3DVisualizer(Det3DLocalVisualizer):
    """``Det3DLocalVisualizer`` whose camera view skips boxes not fully in front of the camera.

    Args:
        name (str): Instance name (mmengine's ``ManagerMixin`` requires the argument).
        min_depth (float): Minimum corner depth in metres. Defaults to 0.1.
        **kwargs: Those of ``Det3DLocalVisualizer``.
    """

    def __init__(self, name='visualizer', min_depth=0.1, **kwargs):
        super().__init__(name=name, **kwargs)
        self.min_depth = min_depth

    def draw_proj_bboxes_3d(self, bboxes_3d, input_meta, edge_colors='royalblue',
                            line_styles='-', line_widths=2, face_colors='royalblue', alpha=0.4,
                            img_size=None):
        """Draw the boxes in front of the camera; arguments as the stock method. Per-box lists
        of colours, styles or widths are filtered along with the boxes. A single edge colour is
        expanded to one per box: with ``img_size`` the stock method indexes it per box."""
        keep = corner_depths(bboxes_3d, input_meta).min(1) > self.min_depth
        if not keep.any():
            return
        if not isinstance(edge_colors, list):
            edge_colors = [edge_colors] * len(keep)

        def select(value):
            if isinstance(value, list) and len(value) == len(keep):
                return [v for v, k in zip(value, keep) if k]
            return value

        super().draw_proj_bboxes_3d(
            bboxes_3d[np.flatnonzero(keep)], input_meta, select(edge_colors), select(line_styles),
            select(line_widths), select(face_colors), alpha, img_size)
