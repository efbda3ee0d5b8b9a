"""Single-stage detector on registered visible/infrared pairs (RGB + infrared detection).

Used by Fusion-Mamba (W. Dong et al., "Fusion-Mamba for Cross-modality Object Detection",
arXiv 2404.09146, IEEE TMM 2025) with mmdet's YOLOX neck and head; generic over the paired
backbone (any backbone taking the two images and returning fused multi-level features), so
other RGB + infrared methods (DAMF) reuse the paired input handling.

Input contract: ``batch_inputs`` is the dict that
:class:`~mmfusion.models.data_preprocessors.PairedDetDataPreprocessor` returns,
``{'img': (B, 3, H, W), 'img_ir': (B, 3, H, W)}``; the backbone is called as
``backbone(batch_inputs['img'], batch_inputs['img_ir'])`` (keys configurable) and returns a
tuple of (B, C_l, H_l, W_l) fused features, which go through the neck and the head exactly as in
mmdet's :class:`~mmdet.models.detectors.SingleStageDetector` (loss, predict, ``_forward``).

Head of the Fusion-Mamba configs and how it differs from the paper's detectors: the paper puts
its FMBs into YOLOv5-l and YOLOv8-l two-stream detectors (Sec. 4.2; official code
``models/transformer/yolov5l-fusionmamba.yaml``, a PAN neck and YOLOv5's ``Detect`` head). Our
configs use mmdet's stock :class:`~mmdet.models.necks.YOLOXPAFPN` and
:class:`~mmdet.models.dense_heads.YOLOXHead` instead, because mmdet 3.2 has no YOLOv5/YOLOv8 head
(those live in mmyolo, which does not install on this stack). Differences that follow:

- YOLOv5's head is anchor-based (3 anchors per level, coupled 1x1 conv for box, objectness and
  classes); YOLOX's is anchor-free (one prediction per location) and decoupled (separate
  classification and regression/objectness branches of stacked 3x3 convs).
- Label assignment: YOLOv5 matches targets to anchors by width/height ratio (< 4) in the target's
  cell and two neighbours; YOLOX uses SimOTA (dynamic top-k by IoU and classification cost inside
  a centre radius). YOLOv8 (anchor-free, decoupled, task-aligned assigner, DFL box loss) is closer
  to YOLOX but still not the same.
- Losses: YOLOX's IoU loss (square IoU), BCE objectness/classification and an L1 box loss in the
  last epochs, instead of YOLOv5's CIoU + BCE objectness/classification.
- The neck is a CSP-PAN in both, with the same three input levels (P3, P4, P5).
"""
from typing import Sequence, Tuple

from mmdet.models.detectors import SingleStageDetector
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from torch import Tensor

__all__ = ['PairedSingleStageDetector']


@MODELS.register_module()
class PairedSingleStageDetector(SingleStageDetector):
    """mmdet's ``SingleStageDetector`` whose inputs are a dict of visible/infrared batches.

    Only :meth:`extract_feat` differs from the stock class: it hands the images named by
    ``modalities`` to the backbone as positional arguments, in that order. ``loss``,
    ``predict`` and ``_forward`` are the stock ones (so any mmdet dense head works).

    Args:
        backbone (dict): Config of a paired backbone, e.g.
            :class:`~mmfusion.models.backbones.DualStreamCSPDarknet`; ``forward(img, img_ir)``
            must return a tuple of fused feature maps.
        neck (dict, optional): Neck config (e.g. ``YOLOXPAFPN``).
        bbox_head (dict): Dense head config (e.g. ``YOLOXHead``).
        modalities (Sequence[str]): Keys of ``batch_inputs`` passed to the backbone, in
            order. Defaults to ``('img', 'img_ir')`` (visible, infrared).
        train_cfg, test_cfg, data_preprocessor, init_cfg: As in
            :class:`~mmdet.models.detectors.SingleStageDetector`; the data preprocessor should
            be :class:`~mmfusion.models.data_preprocessors.PairedDetDataPreprocessor`.
    """

    def __init__(self,
                 backbone: ConfigType,
                 neck: OptConfigType = None,
                 bbox_head: OptConfigType = None,
                 modalities: Sequence[str] = ('img', 'img_ir'),
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            backbone=backbone,
            neck=neck,
            bbox_head=bbox_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.modalities = tuple(modalities)

    def extract_feat(self, batch_inputs: dict) -> Tuple[Tensor]:
        """Fused multi-level features of a batch of pairs.

        Args:
            batch_inputs (dict): ``{'img': (B, 3, H, W), 'img_ir': (B, 3, H, W)}`` (the keys of
                ``modalities``), as :class:`PairedDetDataPreprocessor` returns it.

        Returns:
            tuple[Tensor]: The neck's outputs (the backbone's if there is no neck),
            (B, C_l, H_l, W_l) per level.

        Raises:
            TypeError: If ``batch_inputs`` is not a dict holding every key of ``modalities``
                (e.g. a single tensor from mmdet's ``DetDataPreprocessor``).
        """
        if not isinstance(batch_inputs, dict) or any(k not in batch_inputs
                                                     for k in self.modalities):
            got = sorted(batch_inputs) if isinstance(batch_inputs, dict) else \
                type(batch_inputs).__name__
            raise TypeError(
                f'{self.__class__.__name__} takes a dict of image batches with keys '
                f'{self.modalities} (use PairedDetDataPreprocessor and PackPairedDetInputs), '
                f'got {got}')
        x = self.backbone(*(batch_inputs[k] for k in self.modalities))
        if self.with_neck:
            x = self.neck(x)
        return x
