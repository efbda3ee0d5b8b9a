"""Data transforms, one host each, imported by the entry points, not here:

- mmdet: ``paired_loading``, ``paired_transforms``, ``paired_mosaic``, ``pack_paired_inputs``,
  ``degradations`` (paired visible/infrared loading, augmentation, packing, RGB degradations);
- mmseg: ``depth_loading``, ``rgbd_transforms``, ``pack_rgbd_inputs`` (RGB-D);
- mmdet3d: ``calib_perturbation``.
"""
