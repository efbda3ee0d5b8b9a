"""Metrics beyond the stock ones (``MultiOutputIoUMetric``, mmseg registry) and the CPU KITTI
box overlaps (:mod:`mmfusion.evaluation.kitti_overlaps`, installed by ``mmfusion.det3d``)."""
from .multi_output_iou_metric import MultiOutputIoUMetric

__all__ = ['MultiOutputIoUMetric']
