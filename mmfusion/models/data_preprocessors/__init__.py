"""Data preprocessors: ``paired_data_preprocessor`` (mmdet, RGB + infrared) and
``rgbd_seg_data_preprocessor`` (mmseg, RGB + depth). Imported by the entry points, not here."""
