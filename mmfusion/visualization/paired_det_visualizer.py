"""mmdet's ``DetLocalVisualizer`` for visible + infrared pairs: every drawing on both images.

The paired detectors (Fusion-Mamba, DAMF) predict one set of boxes for a registered pair, in the
pixels of both images. This visualizer draws the ground truth (green) and the predictions
scoring above the threshold (red, with class and score) on the visible and on the infrared image,
in one picture::

    [ GT on visible          | GT on infrared          ]    (if the sample has GT)
    [ predictions on visible | predictions on infrared ]    (if it has predictions)

It is a drop-in for mmdet's visualizer: mmdet's ``DetVisualizationHook`` (``tools/test.py
--show-dir``) passes the visible image and the data sample, whose ``img_ir_path`` names the
infrared partner; :class:`~mmfusion.apis.paired_det_inferencer.PairedDetInferencer` passes
``dict(img=..., img_ir=...)``. Output, ``show`` and backends as the stock ``add_datasample``.
"""
from typing import Optional, Union

import mmcv
import numpy as np
from mmdet.registry import VISUALIZERS
from mmdet.visualization import DetLocalVisualizer
from mmengine.fileio import get

from .publish import publish_drawing

GT_COLOR = (0, 200, 0)
PRED_COLOR = (255, 40, 40)


def as_rgb(img: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 1) grey -> (H, W, 3); (H, W, 3) unchanged; uint8."""
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img.astype(np.uint8, copy=False))


@VISUALIZERS.register_module()
class PairedDetLocalVisualizer(DetLocalVisualizer):
    """Draw GT and predictions of a paired detector on both modalities.

    Args:
        name (str): Instance name. Defaults to ``'visualizer'``.
        **kwargs: Those of mmdet's ``DetLocalVisualizer``.
    """

    def __init__(self, name: str = 'visualizer', **kwargs) -> None:
        super().__init__(name=name, **kwargs)

    @staticmethod
    def load_pair(image: Union[np.ndarray, dict], data_sample=None):
        """The (visible, infrared) RGB images of a sample.

        Args:
            image (np.ndarray | dict): The visible (H, W, 3) RGB image, or
                ``dict(img=visible, img_ir=infrared)`` (RGB arrays).
            data_sample (DetDataSample, optional): Names the infrared file (``img_ir_path``)
                when ``image`` is the visible image alone.

        Returns:
            tuple: Two (H, W, 3) uint8 RGB arrays.

        Raises:
            ValueError: If no infrared image is given or named.
        """
        if isinstance(image, dict):
            return as_rgb(image['img']), as_rgb(image['img_ir'])
        ir_path = data_sample.get('img_ir_path') if data_sample is not None else None
        if ir_path is None:
            raise ValueError('PairedDetLocalVisualizer needs dict(img=..., img_ir=...) or a data '
                             'sample with img_ir_path (pack it with PackPairedDetInputs)')
        ir = mmcv.imfrombytes(get(ir_path), channel_order='rgb')
        return as_rgb(image), as_rgb(ir)

    def _draw_set(self, images, instances, color):
        """Draw ``instances`` in ``color`` on each image; return the row of pictures."""
        classes = self.dataset_meta.get('classes', None)
        bbox_color, text_color = self.bbox_color, self.text_color
        self.bbox_color, self.text_color = color, color
        try:
            return np.concatenate(
                [self._draw_instances(img, instances, classes, None) for img in images], axis=1)
        finally:
            self.bbox_color, self.text_color = bbox_color, text_color

    def draw_pair(self, image, data_sample=None, draw_gt: bool = True, draw_pred: bool = True,
                  pred_score_thr: float = 0.3) -> np.ndarray:
        """The picture described in the module docstring.

        Args:
            image (np.ndarray | dict): See :meth:`load_pair`.
            data_sample (DetDataSample, optional): ``gt_instances`` and/or ``pred_instances``
                (boxes in the pixels of the given images).
            draw_gt (bool): Draw the ground truth. Defaults to True.
            draw_pred (bool): Draw predictions with ``scores > pred_score_thr``. Defaults to
                True.
            pred_score_thr (float): Threshold of drawn predictions. Defaults to 0.3.

        Returns:
            np.ndarray: (R * H, 2 * W, 3) uint8 RGB, R the number of rows drawn (the plain
            pair if there is nothing to draw).
        """
        images = self.load_pair(image, data_sample)
        rows = []
        if data_sample is not None:
            data_sample = data_sample.cpu()
            if draw_gt and 'gt_instances' in data_sample:
                rows.append(self._draw_set(images, data_sample.gt_instances, GT_COLOR))
            if draw_pred and 'pred_instances' in data_sample:
                pred = data_sample.pred_instances
                rows.append(self._draw_set(images, pred[pred.scores > pred_score_thr],
                                           PRED_COLOR))
        if not rows:
            rows.append(np.concatenate(images, axis=1))
        return np.concatenate(rows, axis=0)

    def add_datasample(self, name: str, image, data_sample=None, draw_gt: bool = True,
                       draw_pred: bool = True, show: bool = False, wait_time: float = 0,
                       out_file: Optional[str] = None, pred_score_thr: float = 0.3,
                       step: int = 0) -> None:
        """Draw a pair; arguments as mmdet's ``DetLocalVisualizer.add_datasample`` except
        ``image`` (see :meth:`load_pair`)."""
        drawn = self.draw_pair(image, data_sample, draw_gt, draw_pred, pred_score_thr)
        publish_drawing(self, name, drawn, show, wait_time, out_file, step)
