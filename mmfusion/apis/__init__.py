"""Inference APIs: the stock OpenMMLab Inferencers, subclassed for two-modality inputs.

Host-bound modules, imported from their module paths (this package imports nothing, so that
mmdet-side code never loads mmseg and the reverse):

- :mod:`mmfusion.apis.paired_det_inferencer`: ``PairedDetInferencer`` (mmdet; RGB + infrared
  detection: Fusion-Mamba, DAMF);
- :mod:`mmfusion.apis.rgbd_seg_inferencer`: ``RGBDSegInferencer`` (mmseg; RGB + depth
  segmentation: GeminiFusion).

LiDAR + camera detectors (SSLFusion, GeminiFusion's MVX-Net drop-in) run through mmdet3d's own
``MultiModalityDet3DInferencer`` unchanged.
"""
