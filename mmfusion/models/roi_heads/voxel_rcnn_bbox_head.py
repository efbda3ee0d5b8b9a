"""Voxel R-CNN's box head with OpenPCDet's initialisation: mmdet3d's ``PVRCNNBBoxHead``, whose
layers already match the official head, initialised as the official ``VoxelRCNNHead``.

Source: OpenPCDet ``pcdet/models/roi_heads/voxelrcnn_head.py`` (``init_weights``), as used by
SSLFusion's official code (github.com/TLDBN/SSLFsion): Xavier-normal weights and zero biases in
the shared, classification and regression FC layers, the classification prediction layer
N(0, 0.01), the regression prediction layer N(0, 0.001), both with zero bias. Read, not copied.

mmdet3d's ``PVRCNNBBoxHead`` builds the same layers (1x1 ``Conv2d`` on a (B*N, C, 1, 1) map are
the official ``Linear`` layers: same weights, same fan-in and fan-out) but initialises every conv
Xavier-uniform, the prediction layers included, so the first confidence and box outputs are
far from the small values the official head starts with.
"""
from typing import Optional

from mmdet3d.models.roi_heads.bbox_heads import PVRCNNBBoxHead
from mmdet3d.registry import MODELS
from torch import nn

__all__ = ['VoxelRCNNBBoxHead']


@MODELS.register_module()
class VoxelRCNNBBoxHead(PVRCNNBBoxHead):
    """``PVRCNNBBoxHead`` initialised as OpenPCDet's Voxel R-CNN head.

    Args: as :class:`mmdet3d.models.roi_heads.bbox_heads.PVRCNNBBoxHead`; ``init_cfg`` defaults
    to None here: :meth:`init_weights` applies the official initialisation (an ``init_cfg``
    given still runs first, and the official initialisation then overwrites the FC layers).
    """

    def __init__(self, *args, init_cfg: Optional[dict] = None, **kwargs) -> None:
        super().__init__(*args, init_cfg=init_cfg, **kwargs)

    def init_weights(self) -> None:
        """Hidden FC (1x1 conv) layers: Xavier-normal weights, zero biases; prediction layers
        (the last conv of ``cls_layer`` / ``reg_layer``): N(0, 0.01) / N(0, 0.001), zero bias."""
        super().init_weights()
        predictions = {self.cls_layer[-1]: 0.01, self.reg_layer[-1]: 0.001}
        for layers in (self.shared_fc_layer, self.cls_layer, self.reg_layer):
            for m in layers.modules():
                if not isinstance(m, nn.Conv2d):
                    continue
                if m in predictions:
                    nn.init.normal_(m.weight, mean=0.0, std=predictions[m])
                else:
                    nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
