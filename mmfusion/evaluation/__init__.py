"""Metrics beyond the stock ones: ``multi_output_iou_metric`` (mmseg) and the CPU KITTI box
overlaps ``kitti_overlaps`` (installed by ``mmfusion.det3d``). Imported by the entry points."""
