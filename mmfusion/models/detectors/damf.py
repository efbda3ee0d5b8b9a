"""DAMF detector: ViT-B/16 (CLS token) + DETR, frozen in stage 2 under a trained fusion module.

Paper: "Distribution-Aligned Multimodal Fusion for Robust Object Detection" (DAMF), CVPR 2026.
No official code is released; this follows the paper's three-stage recipe:

- stage 0: an RGB detector, a ViT-B encoder with a CLS token and a DETR decoder/head, trained on
  RGB images alone (this class without ``fusion``; paired inputs are accepted, the infrared image
  is ignored);
- stage 1: a Gaussian mixture P_normal fitted to the frozen encoder's CLS features of normal RGB
  images (``tools/fit_gmm.py``, which calls :meth:`DAMFDetector.extract_cls_features`);
- stage 2: the stage-0 detector frozen (eval mode, no gradients), a fusion module
  (:class:`~mmfusion.models.fusion.DistributionAlignedFusion`) fusing RGB and infrared tokens
  (CLS + patches) trained alone, with ``loss = -log P_normal(fused CLS) + lambda * L_det``,
  lambda = 0.5 (``align_loss`` = ``GMMNegLogLikelihoodLoss``, ``det_loss_weight=0.5``).

Shape shorthand: B batch, (H, W) padded input size in pixels, p = 16 the patch size,
(h, w) = (ceil(H / p), ceil(W / p)) the patch grid, N = 1 + h * w tokens, C the ViT width
(768 for ViT-B), C' the DETR width (256).

Module order (stage 2; stage 0 skips the infrared branch and the fusion)::

    img, img_ir (B, 3, H, W) --backbone (shared, frozen)--> [CLS; patches] (B, N, C) each
        --fusion--> fused (B, N, C) --split--> fused CLS (B, C)      -> align_loss (GMM NLL)
                                              fused patches (B, C, h, w)
        --neck (1x1 conv, ChannelMapper)--> (B, C', h, w) --DETR encoder/decoder/head--> boxes

Choices the paper (as available to us) leaves open, ours:

- Infrared encoder: the frozen stage-0 ViT itself, shared by both modalities (the infrared image
  is normalised with its own mean/std by the data preprocessor and encoded by the same weights;
  both images go through it as one batch of 2B). The recipe trains only the fusion module, so
  the infrared tokens must come from a frozen encoder; a separate copy initialised from the RGB
  one and frozen would compute exactly the same tokens at twice the memory. It also fits the
  paper's "fusion module = 15% of all parameters" better: with one shared ViT-B the fusion
  module is 14.2M of 118.5M parameters (12.0%; LLVIP config), with a second ViT-B it would be
  14.2M of 205M (6.9%).
- The backbone runs under ``torch.no_grad`` when the detector is frozen (no gradient is needed
  before the fusion module), which is where most of stage 2's speed-up over end-to-end training
  comes from.
- The fused CLS token feeds only the alignment loss; DETR sees the fused patch tokens, as it saw
  the RGB patch tokens in stage 0 (the ViT's final LayerNorm is applied before fusion, so the
  fused tokens live in the space the neck was trained on and the GMM was fitted in).
- Ablations at the detector level: ``align_loss=None`` (no alignment), a GMM file fitted on
  degraded images (P_degraded instead of P_normal), ``freeze_detector=False`` with a fusion
  module (end-to-end: everything trains).

Checkpoints: a stage-0 checkpoint loads into a stage-2 model through the runner's ``load_from``
or ``init_cfg=dict(type='Pretrained', checkpoint=...)`` (both non-strict: the fusion module's
keys are missing from it). mmdet's ``DETR.init_weights`` re-initialises the DETR encoder and
decoder after the base class has loaded a ``Pretrained`` ``init_cfg``; this class loads that
checkpoint after the re-initialisation instead, so it is not overwritten.
"""
import copy
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmdet.models.detectors import DETR
from mmdet.models.utils import reweight_loss_dict
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import OptConfigType
from mmengine.model import initialize
from torch import Tensor

__all__ = ['DAMFDetector']

#: Children that are never frozen: the trained fusion module, the loss holding the GMM, and
#: the (parameter-free) data preprocessor.
_TRAINABLE_CHILDREN = ('fusion', 'align_loss', 'data_preprocessor')

Inputs = Union[Tensor, Dict[str, Tensor]]


@MODELS.register_module()
class DAMFDetector(DETR):
    """mmdet's :class:`~mmdet.models.detectors.DETR` on a ViT with a CLS token, plus DAMF's
    stage-2 fusion of RGB and infrared tokens in front of the frozen neck/transformer/head.

    Args:
        backbone (dict): A ViT returning ``[(patches (B, C, h, w), cls (B, C))]`` for one
            layer: mmseg's ``VisionTransformer`` (scope ``mmseg.``) with
            ``with_cls_token=True``, ``output_cls_token=True``, ``final_norm=True`` and a
            single ``out_indices``.
        neck (dict): Maps ``(patches,)`` to DETR's width, e.g. mmdet's ``ChannelMapper``.
        fusion (dict, optional): Config of the stage-2 fusion module (``forward(x_rgb, x_ir)``
            on (B, N, C) token sequences -> (B, N, C)). None: stage 0 (RGB only).
            Defaults to None.
        align_loss (dict, optional): Loss on the fused CLS token (B, C), e.g.
            ``GMMNegLogLikelihoodLoss``; reported as ``loss_align``. Needs ``fusion``.
            Defaults to None.
        det_loss_weight (float): Factor on every DETR loss term (the paper's lambda = 0.5 in
            stage 2; 1.0 in stage 0). Defaults to 1.0.
        freeze_detector (bool): Freeze everything but the fusion module: ``requires_grad``
            False and eval mode kept through :meth:`train`. Needs ``fusion``.
            Defaults to False.
        **kwargs: As :class:`~mmdet.models.detectors.DETR` (``encoder``, ``decoder``,
            ``bbox_head``, ``positional_encoding``, ``num_queries``, ``train_cfg``,
            ``test_cfg``, ``data_preprocessor``, ``init_cfg``).

    Raises:
        ValueError: If ``align_loss`` or ``freeze_detector`` is given without ``fusion``, or
            the backbone does not output its CLS token (``output_cls_token``).
    """

    def __init__(self,
                 *args,
                 fusion: OptConfigType = None,
                 align_loss: OptConfigType = None,
                 det_loss_weight: float = 1.0,
                 freeze_detector: bool = False,
                 **kwargs) -> None:
        if fusion is None and (align_loss is not None or freeze_detector):
            raise ValueError(
                f'{self.__class__.__name__}: align_loss and freeze_detector belong to stage 2 '
                'and need a fusion module (fusion=dict(type="DistributionAlignedFusion", ...))')
        super().__init__(*args, **kwargs)
        if not getattr(self.backbone, 'output_cls_token', False):
            raise ValueError(
                f'{self.__class__.__name__}: the backbone must output its CLS token; use '
                "mmseg's VisionTransformer with with_cls_token=True, output_cls_token=True")
        self.fusion = MODELS.build(fusion) if fusion is not None else None
        self.align_loss = MODELS.build(align_loss) if align_loss is not None else None
        self.det_loss_weight = float(det_loss_weight)
        self.freeze_detector = bool(freeze_detector)
        if self.freeze_detector:
            for param in self.detector_parameters():
                param.requires_grad_(False)
            self.train(self.training)

    # ------------------------------------------------------------------ structure

    @property
    def with_fusion(self) -> bool:
        """True in stage 2 (a fusion module is present)."""
        return self.fusion is not None

    def detector_modules(self) -> List[Tuple[str, torch.nn.Module]]:
        """The stage-0 detector's children (backbone, neck, positional encoding, encoder,
        decoder, query embedding, head): every child but ``fusion``, ``align_loss`` and
        ``data_preprocessor``.

        Returns:
            list[tuple[str, nn.Module]]: (name, module) pairs.
        """
        return [(n, m) for n, m in self.named_children() if n not in _TRAINABLE_CHILDREN]

    def detector_parameters(self):
        """Yield the parameters of :meth:`detector_modules` (frozen in stage 2)."""
        for _, module in self.detector_modules():
            yield from module.parameters()

    def train(self, mode: bool = True) -> 'DAMFDetector':
        """Set train/eval mode; with ``freeze_detector`` the detector stays in eval mode.

        Args:
            mode (bool): Training mode for the fusion module (and, unless frozen, the rest).

        Returns:
            DAMFDetector: self.
        """
        super().train(mode)
        if self.freeze_detector:
            for _, module in self.detector_modules():
                module.eval()
        return self

    def init_weights(self) -> None:
        """Initialise as DETR does, then load any ``Pretrained`` ``init_cfg`` (non-strict).

        ``DETR.init_weights`` re-initialises the transformer after ``BaseModule`` has loaded a
        ``Pretrained`` checkpoint, which would overwrite a stage-0 checkpoint's encoder and
        decoder; so the ``Pretrained`` entries are held back and loaded last.
        """
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else \
            [self.init_cfg] if self.init_cfg is not None else []
        pretrained = [c for c in cfgs if c.get('type') == 'Pretrained']
        others = [c for c in cfgs if c.get('type') != 'Pretrained']
        original = self.init_cfg
        self.init_cfg = others or None
        try:
            super().init_weights()
        finally:
            self.init_cfg = original
        for cfg in pretrained:
            initialize(self, copy.deepcopy(cfg))

    # ------------------------------------------------------------------ features

    @staticmethod
    def _split_inputs(batch_inputs: Inputs) -> Tuple[Tensor, Optional[Tensor]]:
        """(visible (B, 3, H, W), infrared (B, 3, H, W) or None) from tensor or dict inputs."""
        if isinstance(batch_inputs, Tensor):
            return batch_inputs, None
        if isinstance(batch_inputs, dict) and 'img' in batch_inputs:
            return batch_inputs['img'], batch_inputs.get('img_ir')
        raise TypeError(
            'DAMFDetector expects a (B, 3, H, W) tensor or a dict with "img" (and "img_ir" in '
            'stage 2) from PairedDetDataPreprocessor, got '
            f'{sorted(batch_inputs) if isinstance(batch_inputs, dict) else type(batch_inputs)}')

    def _encode(self, imgs: Tensor) -> Tuple[Tensor, Tensor]:
        """Run the ViT; returns (patch tokens (B, C, h, w), CLS token (B, C))."""
        outs = self.backbone(imgs)
        if len(outs) != 1 or not isinstance(outs[0], (list, tuple)) or len(outs[0]) != 2:
            raise ValueError(
                f'{self.__class__.__name__}: the backbone must return one output '
                '[patches, cls] (a single out_indices with output_cls_token=True), got '
                f'{len(outs)} outputs')
        patches, cls = outs[0]
        return patches, cls

    def extract_cls_features(self, imgs: Inputs) -> Tensor:
        """CLS features of the (frozen) RGB encoder, the space P_normal is fitted in.

        Gradients follow the caller's context (wrap in ``torch.no_grad()`` for fitting).

        Args:
            imgs (Tensor | dict): Normalised RGB images (B, 3, H, W), or the paired dict (its
                ``'img'`` is used).

        Returns:
            Tensor: (B, C) CLS token after the ViT's final LayerNorm.
        """
        rgb, _ = self._split_inputs(imgs)
        return self._encode(rgb)[1]

    def _extract(self, batch_inputs: Inputs) -> Tuple[Tuple[Tensor], Optional[Tensor]]:
        """Neck features for DETR and, in stage 2, the fused CLS token.

        Returns:
            tuple: (neck outputs, tuple of (B, C', h, w)), fused CLS (B, C) or None.

        Raises:
            ValueError: In stage 2, if the infrared image is missing or its shape differs.
        """
        rgb, ir = self._split_inputs(batch_inputs)
        if not self.with_fusion:
            patches = self._encode(rgb)[0]
            return self.neck((patches, )), None
        if ir is None or ir.shape != rgb.shape:
            raise ValueError(
                f'{self.__class__.__name__} (stage 2) needs inputs {{"img", "img_ir"}} of equal '
                f'shape, got img {tuple(rgb.shape)} and img_ir '
                f'{None if ir is None else tuple(ir.shape)}')
        batch = rgb.shape[0]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_detector):
            patches, cls = self._encode(torch.cat([rgb, ir], dim=0))
        h, w = patches.shape[-2:]
        tokens = torch.cat([cls.unsqueeze(1), patches.flatten(2).transpose(1, 2)], dim=1)
        fused = self.fusion(tokens[:batch], tokens[batch:])  # (B, N, C)
        fused_cls = fused[:, 0]
        fused_patches = fused[:, 1:].transpose(1, 2).reshape(batch, -1, h, w)
        return self.neck((fused_patches, )), fused_cls

    def extract_feat(self, batch_inputs: Inputs) -> Tuple[Tensor]:
        """Neck features (stage 0: of the RGB image; stage 2: of the fused tokens).

        Args:
            batch_inputs (Tensor | dict): (B, 3, H, W) or ``{'img', 'img_ir'}``.

        Returns:
            tuple[Tensor]: One (B, C', h, w) feature map.
        """
        return self._extract(batch_inputs)[0]

    def extract_fused_cls_features(self, batch_inputs: Dict[str, Tensor]) -> Tensor:
        """Fused CLS token of stage 2 (what the alignment loss scores under P_normal).

        Args:
            batch_inputs (dict): ``{'img', 'img_ir'}``, each (B, 3, H, W).

        Returns:
            Tensor: (B, C).

        Raises:
            RuntimeError: In stage 0 (no fusion module).
        """
        if not self.with_fusion:
            raise RuntimeError(f'{self.__class__.__name__}: no fusion module (stage 0)')
        return self._extract(batch_inputs)[1]

    # ------------------------------------------------------------------ forward modes
    # ``predict`` and ``_forward`` are DETR's own: they call :meth:`extract_feat`.

    def loss(self, batch_inputs: Inputs, batch_data_samples: SampleList) -> dict:
        """DETR losses (times ``det_loss_weight``) plus ``loss_align`` on the fused CLS token.

        Args:
            batch_inputs (Tensor | dict): (B, 3, H, W) (stage 0) or ``{'img', 'img_ir'}``.
            batch_data_samples (list[DetDataSample]): With ``gt_instances``.

        Returns:
            dict[str, Tensor]: mmdet's DETRHead losses (``loss_cls``, ``loss_bbox``,
            ``loss_iou`` and the ``d{i}.*`` decoder-layer terms), and ``loss_align`` in stage
            2 when ``align_loss`` is set.
        """
        img_feats, fused_cls = self._extract(batch_inputs)
        head_inputs_dict = self.forward_transformer(img_feats, batch_data_samples)
        losses = self.bbox_head.loss(**head_inputs_dict, batch_data_samples=batch_data_samples)
        if self.det_loss_weight != 1.0:
            losses = reweight_loss_dict(losses, self.det_loss_weight)
        if self.align_loss is not None:
            losses['loss_align'] = self.align_loss(fused_cls)
        return losses
