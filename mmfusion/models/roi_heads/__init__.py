"""Second stages of two-stage 3D detectors: ``voxel_rcnn_roi_head`` and ``voxel_roi_pooling``
(mmdet3d). Imported by ``mmfusion.det3d``, not here."""
