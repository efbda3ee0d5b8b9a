"""mmseg's ``SegLocalVisualizer`` for RGB + depth segmentation (GeminiFusion).

One picture per frame (H, W the RGB image size)::

    [ GT on RGB | ensemble prediction on RGB | depth, colour-mapped ]
    [ rgb-stream prediction | depth-stream prediction | (blank)   ]   (``draw_streams`` only)
    [ legend: a colour swatch and the name of every class present   ]

The class maps are blended on the RGB image with mmseg's own drawing (``alpha``); the depth
panel maps metres to ``cv2.COLORMAP_JET`` between the frame's 2nd and 98th
percentile, with holes (0 m) black. Per-stream predictions are ``pred_sem_seg_rgb`` /
``pred_sem_seg_depth`` of :class:`~mmfusion.models.segmentors.gemini_fusion_encoder_decoder.
GeminiFusionEncoderDecoder`.

It is a drop-in for mmseg's visualizer: mmseg's ``SegVisualizationHook`` passes the RGB image
and the data sample, whose ``depth_path`` names the 16-bit depth PNG (metres x
``depth_scale``); :class:`~mmfusion.apis.rgbd_seg_inferencer.RGBDSegInferencer` passes
``dict(img=rgb, depth=metres)``. Output, ``show`` and backends as the stock ``add_datasample``.
"""
from typing import Optional

import cv2
import mmcv
import numpy as np
from mmengine.fileio import get
from mmseg.registry import VISUALIZERS
from mmseg.visualization import SegLocalVisualizer

from .publish import publish_drawing

LEGEND_ROW = 22  # pixels per legend line


def colorize_depth(depth: np.ndarray) -> np.ndarray:
    """(H, W) metres -> (H, W, 3) uint8 RGB, percentiles 2..98 over valid pixels; 0 m black."""
    valid = depth > 0
    out = np.zeros(depth.shape + (3, ), np.uint8)
    if not valid.any():
        return out
    lo, hi = np.percentile(depth[valid], [2, 98])
    norm = np.clip((depth - lo) / max(hi - lo, 1e-6), 0, 1)
    colored = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    out[valid] = colored[valid]
    return out


@VISUALIZERS.register_module()
class RGBDSegLocalVisualizer(SegLocalVisualizer):
    """Overlay on RGB, colour-mapped depth and a per-class legend.

    Args:
        name (str): Instance name. Defaults to ``'visualizer'``.
        depth_scale (float): Stored units per metre of the depth PNG named by a data sample's
            ``depth_path``. Defaults to 5000 (NYUDv2 as converted by mmfusion).
        draw_streams (bool): Also draw the per-stream predictions. Defaults to False.
        **kwargs: Those of mmseg's ``SegLocalVisualizer`` (``alpha``, ``classes``, ...).
    """

    def __init__(self, name: str = 'visualizer', depth_scale: float = 5000.,
                 draw_streams: bool = False, **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.depth_scale = depth_scale
        self.draw_streams = draw_streams

    def load_depth(self, image, data_sample) -> Optional[np.ndarray]:
        """Depth in metres ((H, W) float32) from ``image['depth']`` or ``depth_path``."""
        if isinstance(image, dict) and image.get('depth') is not None:
            return np.asarray(image['depth'], dtype=np.float32)
        path = data_sample.get('depth_path') if data_sample is not None else None
        if path is None:
            return None
        raw = mmcv.imfrombytes(get(path), flag='unchanged', backend='cv2')
        return raw.astype(np.float32) / np.float32(self.depth_scale)

    def _overlay(self, img, sem_seg, with_labels):
        classes = self.dataset_meta.get('classes')
        palette = self.dataset_meta.get('palette')
        return self._draw_sem_seg(img, sem_seg, classes, palette, with_labels)

    def _legend(self, labels, width) -> np.ndarray:
        """Swatch and name of each class index in ``labels``, in rows of up to 4 entries."""
        classes = self.dataset_meta.get('classes') or []
        palette = self.dataset_meta.get('palette') or []
        labels = [int(x) for x in labels if 0 <= int(x) < len(classes)]
        per_row = 4
        rows = max(1, -(-len(labels) // per_row))
        canvas = np.full((rows * LEGEND_ROW + 6, width, 3), 255, np.uint8)
        cell = width // per_row
        texts, positions = [], []
        for i, label in enumerate(labels):
            x, y = (i % per_row) * cell + 6, (i // per_row) * LEGEND_ROW + 4
            canvas[y:y + 16, x:x + 16] = palette[label] if label < len(palette) else 0
            texts.append(str(classes[label]))
            positions.append([x + 22, y])
        self.set_image(canvas)
        if texts:
            self.draw_texts(texts, np.array(positions), colors='black', font_sizes=11)
        return self.get_image()

    def draw_rgbd(self, image, data_sample=None, draw_gt: bool = True, draw_pred: bool = True,
                  with_labels: bool = True, draw_streams: Optional[bool] = None) -> np.ndarray:
        """The picture described in the module docstring.

        Args:
            image (np.ndarray | dict): (H, W, 3) RGB image, or ``dict(img=rgb, depth=metres)``.
            data_sample (SegDataSample, optional): ``gt_sem_seg``, ``pred_sem_seg`` and
                optionally the per-stream predictions and ``depth_path``.
            draw_gt, draw_pred (bool): Draw the ground truth / the ensemble prediction.
            with_labels (bool): Class names on the masks (mmseg's option). Defaults to True.
            draw_streams (bool, optional): Override of the instance's ``draw_streams``.

        Returns:
            np.ndarray: (H', W', 3) uint8 RGB.
        """
        img = image['img'] if isinstance(image, dict) else image
        img = np.ascontiguousarray(img.astype(np.uint8, copy=False))
        h, w = img.shape[:2]
        streams = self.draw_streams if draw_streams is None else draw_streams
        blank = np.full_like(img, 255)
        row, labels = [], set()
        ds = data_sample.cpu() if data_sample is not None else None
        for key, wanted in (('gt_sem_seg', draw_gt), ('pred_sem_seg', draw_pred)):
            if wanted and ds is not None and key in ds:
                row.append(self._overlay(img, ds.get(key), with_labels))
                labels |= set(np.unique(ds.get(key).data.numpy()).tolist())
        if not row:
            row.append(img)
        depth = self.load_depth(image, ds)
        row.append(colorize_depth(depth) if depth is not None else blank)
        rows = [np.concatenate(row, axis=1)]
        if streams and ds is not None and 'pred_sem_seg_rgb' in ds:
            keys = [f'pred_sem_seg_{s}' for s in ('rgb', 'depth') if f'pred_sem_seg_{s}' in ds]
            second = [self._overlay(img, ds.get(k), with_labels) for k in keys]
            for k in keys:
                labels |= set(np.unique(ds.get(k).data.numpy()).tolist())
            second += [blank] * (len(row) - len(second))
            rows.append(np.concatenate(second[:len(row)], axis=1))
        picture = np.concatenate(rows, axis=0)
        legend = self._legend(sorted(labels), picture.shape[1])
        return np.concatenate([picture, legend], axis=0)

    def add_datasample(self, name: str, image, data_sample=None, draw_gt: bool = True,
                       draw_pred: bool = True, show: bool = False, wait_time: float = 0,
                       out_file: Optional[str] = None, step: int = 0,
                       with_labels: Optional[bool] = True) -> None:
        """Draw a frame; arguments as mmseg's ``SegLocalVisualizer.add_datasample`` except
        ``image`` (see :meth:`draw_rgbd`)."""
        drawn = self.draw_rgbd(image, data_sample, draw_gt, draw_pred, with_labels)
        publish_drawing(self, name, drawn, show, wait_time, out_file, step)
