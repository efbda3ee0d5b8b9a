"""mmdet3d's ``Det3DLocalVisualizer`` with a camera view and a bird's-eye view that need no open3d.

Two changes to the stock visualizer, everything else is inherited:

1. mmdet3d 1.4's ``draw_proj_bboxes_3d`` projects all eight corners of every box through
   ``lidar2img`` / ``cam2img`` / ``depth2img`` and divides by depth; a box with a corner behind
   the image plane gets corners at huge or sign-flipped pixel coordinates, and its filled polygon
   covers the whole picture (measured: a LiDAR box 5 m behind the sensor turns the KITTI frame
   white). Here every box with a corner less than ``min_depth`` metres in front of the camera is
   dropped before the stock drawing, as KITTI's own camera-view renderings do. A single edge
   colour is accepted together with ``img_size`` (the stock method indexes it per box).
2. For ``vis_task`` ``'lidar_det'`` and ``'multi-modality_det'`` the stock ``add_datasample``
   opens an open3d window even to save a picture, and open3d is an optional dependency of
   mmdet3d. Unless an interactive window is asked for and open3d is installed, this class draws
   one picture with matplotlib instead (:meth:`draw_frame`): the camera image with the ground
   truth (green) and, below it, with the predictions scoring above the threshold (red, with
   class and score), and beside them a bird's-eye view of the points with both box sets. It is
   written to ``out_file`` (or ``o3d_save_path``, which the stock hook sets for ``lidar_det``),
   or to the visualizer's backends, as the stock method does.

Ground truth is taken from ``gt_instances_3d`` or, for test-mode samples (which carry their
annotations only for evaluation), from ``eval_ann_info['gt_bboxes_3d']``.
"""
import importlib.util
from typing import Optional, Sequence

import mmcv
import numpy as np
from mmdet3d.registry import VISUALIZERS
from mmdet3d.structures import (Box3DMode, CameraInstance3DBoxes, DepthInstance3DBoxes,
                                LiDARInstance3DBoxes)
from mmdet3d.visualization import Det3DLocalVisualizer
from mmengine.visualization import Visualizer

# optional dependency of mmdet3d, used here only for the interactive 3D window
HAS_OPEN3D = importlib.util.find_spec('open3d') is not None

# box type -> key of its 3D-to-image matrix in the sample's meta (as mmdet3d's projections use)
_PROJECTION_KEY = ((DepthInstance3DBoxes, 'depth2img'), (CameraInstance3DBoxes, 'cam2img'))
GT_COLOR = (0, 200, 0)
PRED_COLOR = (255, 40, 40)
# LiDAR box corners of the bottom face in drawing order (mmdet3d's corner numbering)
_BOTTOM_FACE = [0, 3, 7, 4]


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


def gt_boxes_of(data_sample):
    """The ground-truth 3D boxes of a sample, or None.

    Returns:
        tuple: ``(bboxes_3d, labels_3d)`` from ``gt_instances_3d``, else from
        ``eval_ann_info`` (test mode), else ``(None, None)``.
    """
    if data_sample is None:
        return None, None
    gt = data_sample.get('gt_instances_3d')
    if gt is not None and 'bboxes_3d' in gt and len(gt) > 0:
        return gt.bboxes_3d, gt.labels_3d
    ann = data_sample.get('eval_ann_info') or {}
    if ann.get('gt_bboxes_3d') is not None and len(ann['gt_bboxes_3d']) > 0:
        return ann['gt_bboxes_3d'], ann.get('gt_labels_3d')
    return None, None


def to_lidar(bboxes_3d, input_meta):
    """Boxes in LiDAR coordinates (camera boxes through ``lidar2cam``), or None if unknown."""
    if isinstance(bboxes_3d, LiDARInstance3DBoxes):
        return bboxes_3d
    if isinstance(bboxes_3d, CameraInstance3DBoxes) and 'lidar2cam' in input_meta:
        cam2lidar = np.linalg.inv(np.asarray(input_meta['lidar2cam'], dtype=np.float64))
        return bboxes_3d.convert_to(Box3DMode.LIDAR, rt_mat=cam2lidar.astype(np.float32))
    return None


@VISUALIZERS.register_module()
class CameraViewDet3DVisualizer(Det3DLocalVisualizer):
    """``Det3DLocalVisualizer`` with a filtered camera view and an open3d-free LiDAR picture.

    Args:
        name (str): Instance name (mmengine's ``ManagerMixin`` requires the argument).
        min_depth (float): Minimum corner depth in metres for a box drawn on the camera image.
            Defaults to 0.1.
        bev_range (Sequence[float]): ``(x_min, y_min, x_max, y_max)`` in LiDAR metres of the
            bird's-eye view (x forward, y left). Defaults to KITTI's front range
            ``(0, -40, 70.4, 40)``.
        bev_height (int): Height in pixels of the bird's-eye view when there is no camera image
            (with one, the view is as tall as the two camera panels). Defaults to 800.
        **kwargs: Those of ``Det3DLocalVisualizer``.
    """

    def __init__(self, name='visualizer', min_depth=0.1,
                 bev_range: Sequence[float] = (0., -40., 70.4, 40.), bev_height: int = 800,
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.min_depth = min_depth
        self.bev_range = tuple(float(v) for v in bev_range)
        self.bev_height = bev_height

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

    # ---- the open3d-free picture ----------------------------------------------------------
    def _class_name(self, label) -> str:
        classes = (self.dataset_meta or {}).get('classes')
        label = int(label)
        return classes[label] if classes is not None and label < len(classes) else str(label)

    def _camera_panel(self, img, meta, boxes, color, texts=None):
        """``img`` (H, W, 3) RGB with ``boxes`` projected (front of the camera only)."""
        self.set_image(img)
        if boxes is not None and len(boxes) > 0:
            self.draw_proj_bboxes_3d(boxes, meta, edge_colors=color, face_colors=color,
                                     alpha=0.15, img_size=img.shape[:2][::-1])
            if texts:
                keep = corner_depths(boxes, meta).min(1) > self.min_depth
                key = next((k for c, k in _PROJECTION_KEY if isinstance(boxes, c)), 'lidar2img')
                mat = np.asarray(meta[key], dtype=np.float64)
                corners = boxes.corners.detach().cpu().numpy().astype(np.float64)[keep]
                pts = corners @ mat[:3, :3].T + (mat[:3, 3] if mat.shape[1] == 4 else 0.0)
                uv = pts[..., :2] / pts[..., 2:3]  # (K, 8, 2) corner pixels
                h, w = img.shape[:2]
                # the stock drawing keeps a box with at least 4 corners inside the image
                seen = ((uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0)
                        & (uv[..., 1] < h)).sum(1) >= 4
                pos = np.stack([uv[..., 0].min(1).clip(0, w - 1),
                                uv[..., 1].min(1).clip(0, h - 1)], axis=1)[seen]
                kept_texts = [t for t, s in zip([t for t, k in zip(texts, keep) if k], seen)
                              if s]
                if kept_texts:
                    self.draw_texts(kept_texts, pos, colors='white', font_sizes=11,
                                    bboxes=[dict(facecolor=np.array(color) / 255, alpha=0.8,
                                                 pad=0.7, edgecolor='none')] * len(kept_texts))
        return self.get_image()

    def _bev_xy_to_pixels(self, xy, scale):
        """LiDAR (x, y) metres -> BEV pixels (u right = -y, v down = -x)."""
        x_min, y_min, x_max, y_max = self.bev_range
        return np.stack([(y_max - xy[..., 1]) * scale, (x_max - xy[..., 0]) * scale], axis=-1)

    def _bev_panel(self, points, height, gt, preds, pred_texts):
        """Bird's-eye view: points grey, GT boxes green, predictions red with their scores."""
        x_min, y_min, x_max, y_max = self.bev_range
        scale = height / (x_max - x_min)  # pixels per metre
        width = int(round((y_max - y_min) * scale))
        canvas = np.full((height, width, 3), 25, dtype=np.uint8)
        if points is not None and len(points) > 0:
            uv = self._bev_xy_to_pixels(np.asarray(points)[:, :2], scale).astype(np.int64)
            ok = (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)
            canvas[uv[ok, 1], uv[ok, 0]] = 170
        self.set_image(canvas)
        for boxes, color, texts in ((gt, GT_COLOR, None), (preds, PRED_COLOR, pred_texts)):
            if boxes is None or len(boxes) == 0:
                continue
            corners = boxes.corners.detach().cpu().numpy()[:, _BOTTOM_FACE, :2]  # (N, 4, 2)
            polygons = self._bev_xy_to_pixels(corners, scale)
            centers = polygons.mean(1)
            # boxes outside the view are left out, the others clipped to it (matplotlib would
            # grow the canvas to hold them)
            inside = ((centers[:, 0] >= 0) & (centers[:, 0] < width) & (centers[:, 1] >= 0)
                      & (centers[:, 1] < height))
            if not inside.any():
                continue
            polygons = polygons[inside]
            polygons[..., 0] = polygons[..., 0].clip(0, width - 1)
            polygons[..., 1] = polygons[..., 1].clip(0, height - 1)
            self.draw_polygons(list(polygons), edge_colors=color, line_widths=2)
            # heading: centre to the middle of the front face
            centers = polygons.mean(1)
            fronts = polygons[:, 2:4].mean(1)
            self.draw_lines(np.stack([centers[:, 0], fronts[:, 0]], 1),
                            np.stack([centers[:, 1], fronts[:, 1]], 1), colors=color,
                            line_widths=2)
            if texts:
                self.draw_texts([t for t, k in zip(texts, inside) if k], fronts, colors=color,
                                font_sizes=10)
        self.draw_texts(['ground truth', 'prediction'], np.array([[8, 8], [8, 26]]),
                        colors=[GT_COLOR, PRED_COLOR], font_sizes=12)
        return self.get_image()

    def draw_frame(self, data_input: dict, data_sample=None, draw_gt: bool = True,
                   draw_pred: bool = True, pred_score_thr: float = 0.3) -> np.ndarray:
        """One picture of a LiDAR(+camera) frame, without open3d.

        Args:
            data_input (dict): ``points`` ((P, C) array or tensor, LiDAR metres) and optionally
                ``img`` ((H, W, 3) uint8 RGB).
            data_sample (Det3DDataSample, optional): Holds the meta (``lidar2img``), the GT
                (see the module docstring) and ``pred_instances_3d``.
            draw_gt (bool): Draw the ground truth (green). Defaults to True.
            draw_pred (bool): Draw predictions with ``scores_3d > pred_score_thr`` (red, with
                class and score). Defaults to True.
            pred_score_thr (float): Score threshold of drawn predictions. Defaults to 0.3.

        Returns:
            np.ndarray: (H', W', 3) uint8 RGB: the camera with GT above the camera with
            predictions, the bird's-eye view to the right (only the view without a camera
            image).
        """
        meta = data_sample.metainfo if data_sample is not None else {}
        gt, _ = gt_boxes_of(data_sample) if draw_gt else (None, None)
        preds, pred_texts = None, None
        if draw_pred and data_sample is not None and 'pred_instances_3d' in data_sample:
            inst = data_sample.pred_instances_3d
            inst = inst[inst.scores_3d > pred_score_thr].to('cpu')
            if len(inst) > 0:
                preds = inst.bboxes_3d
                pred_texts = [f'{self._class_name(lb)} {float(s):.2f}'
                              for lb, s in zip(inst.labels_3d, inst.scores_3d)]
        points = data_input.get('points')
        if points is not None and hasattr(points, 'cpu'):
            points = points.cpu().numpy()
        img = data_input.get('img')
        panels = []
        if img is not None and 'lidar2img' in meta:
            img = np.ascontiguousarray(img)
            panels.append(np.concatenate([
                self._camera_panel(img, meta, gt, GT_COLOR),
                self._camera_panel(img, meta, preds, PRED_COLOR, pred_texts)], axis=0))
        height = panels[0].shape[0] if panels else self.bev_height
        gt_lidar = to_lidar(gt, meta) if gt is not None else None
        pred_lidar = to_lidar(preds, meta) if preds is not None else None
        panels.append(self._bev_panel(points, height, gt_lidar, pred_lidar, pred_texts))
        return np.concatenate(panels, axis=1)

    def add_datasample(self, name: str, data_input: dict, data_sample=None,
                       draw_gt: bool = True, draw_pred: bool = True, show: bool = False,
                       wait_time: float = 0, out_file: Optional[str] = None,
                       o3d_save_path: Optional[str] = None, vis_task: str = 'mono_det',
                       pred_score_thr: float = 0.3, step: int = 0,
                       show_pcd_rgb: bool = False) -> None:
        """The stock method, except for LiDAR tasks without an open3d window (module docstring).

        Arguments as ``Det3DLocalVisualizer.add_datasample``. For ``'lidar_det'`` and
        ``'multi-modality_det'`` (unless ``show`` with open3d installed) the picture of
        :meth:`draw_frame` goes to ``out_file``, else to ``o3d_save_path``, else to the
        visualizer's backends (``add_image``); ``show`` displays it with matplotlib.
        """
        if vis_task not in ('lidar_det', 'multi-modality_det') or (show and HAS_OPEN3D):
            return super().add_datasample(
                name, data_input, data_sample, draw_gt=draw_gt, draw_pred=draw_pred, show=show,
                wait_time=wait_time, out_file=out_file, o3d_save_path=o3d_save_path,
                vis_task=vis_task, pred_score_thr=pred_score_thr, step=step,
                show_pcd_rgb=show_pcd_rgb)
        if vis_task == 'lidar_det':
            data_input = {k: v for k, v in data_input.items() if k != 'img'}
        drawn = self.draw_frame(data_input, data_sample, draw_gt, draw_pred, pred_score_thr)
        if show:
            Visualizer.show(self, drawn, win_name=name, wait_time=wait_time)
        target = out_file or o3d_save_path
        if target is not None:
            if not target.endswith(('.png', '.jpg')):
                target = f'{target}.png'
            mmcv.imwrite(drawn[..., ::-1], target)
        else:
            self.add_image(name, drawn, step)
