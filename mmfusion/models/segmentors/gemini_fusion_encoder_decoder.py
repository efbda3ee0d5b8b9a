"""RGB + depth encoder-decoder of GeminiFusion: one head per stream, ensembled logits.

Paper: D. Jia et al., "GeminiFusion: Efficient Pixel-wise Multimodal Fusion for Vision
Transformer", ICML 2024 (arXiv 2406.01210), Sec. 4 (semantic segmentation on NYUDv2 / SUN RGB-D,
following TokenFusion, Wang et al., CVPR 2022). Official code: github.com/JiaDingCN/GeminiFusion,
main, ``WeTr`` in ``models/segformer.py`` and the loss in ``main.py``.

What the model computes (shape shorthand: B batch, K classes, H, W input size in pixels,
h = H / 4, w = W / 4 the decoder's output size)::

    feats_rgb, feats_depth = backbone(img, img_depth)         two-modality MiT, fused inside
    logits_rgb   = head(feats_rgb)                            (B, K, h, w), one SegFormer head,
    logits_depth = head(feats_depth)                          shared by both streams
    a = softmax(alpha)                                        alpha: learnable (2,), init ones
    logits_ens = a[0] * logits_rgb.detach() + a[1] * logits_depth.detach()

Training loss: the head's decode loss (cross-entropy with the configured ``loss_decode``) on each
of the three outputs, summed, reported as ``decode_rgb.*``, ``decode_depth.*``,
``decode_ensemble.*``. As in the official code the ensemble is built from *detached* logits
(``x[l].detach()``), so its loss only trains ``alpha`` (``detach_ensemble_inputs=False`` lets it
reach the streams).

Prediction: ``pred_sem_seg`` / ``seg_logits`` hold the ensemble (what mmseg's evaluators and
visualisers read); ``pred_sem_seg_rgb`` and ``pred_sem_seg_depth`` hold the per-stream
predictions (PixelData (1, H_ori, W_ori), class indices), for
:class:`~mmfusion.evaluation.MultiOutputIoUMetric`.

Inputs are the dict ``{'img': (B, 3, H, W), 'img_depth': (B, 3, H, W)}`` of
:class:`~mmfusion.models.data_preprocessors.RGBDSegDataPreProcessor`.

Relation to the official code:

- ``alpha`` is a parameter of the model; whether it trains is the optimizer's choice. The
  official code puts it in none of the optimiser's parameter groups, so the ensemble stays the
  plain mean of the two streams; the paper configs reproduce that with
  ``paramwise_cfg=dict(custom_keys={'ensemble_alpha': dict(lr_mult=0., decay_mult=0.)})``, and
  the ``geminifusion-learned-ensemble_*`` config trains it (the paper/TokenFusion describe
  learnable ensemble weights).
- Test-time: whole-image inference only (``test_cfg.mode='whole'``, as the official evaluation);
  the official code resizes the logits with bicubic interpolation, mmseg bilinearly.
- No neck and no auxiliary head (the official model has neither).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import OptConfigType, OptMultiConfig, add_prefix
from torch import Tensor, nn

__all__ = ['GeminiFusionEncoderDecoder']

INPUT_KEYS = ('img', 'img_depth')  # RGB, encoded depth
STREAMS = ('rgb', 'depth')
OUTPUTS = STREAMS + ('ensemble', )


@MODELS.register_module()
class GeminiFusionEncoderDecoder(EncoderDecoder):
    """mmseg ``EncoderDecoder`` for RGB + depth with per-stream outputs and their ensemble.

    Args:
        backbone (dict): A two-modality backbone whose ``forward(x_rgb, x_depth)`` returns
            ``(feats_rgb, feats_depth)``, e.g.
            :class:`~mmfusion.models.backbones.GeminiMixVisionTransformer`.
        decode_head (dict): One mmseg decode head (e.g. ``SegformerHead``), shared by both
            streams.
        train_cfg, test_cfg, data_preprocessor, pretrained, init_cfg: As ``EncoderDecoder``.
        detach_ensemble_inputs (bool): Build the ensemble from detached stream logits
            (official). Default True.

    Raises:
        ValueError: If ``test_cfg.mode`` is not ``'whole'``; from the forward passes, if the
            inputs are not a dict with ``img`` and ``img_depth``.
    """

    def __init__(self,
                 backbone: dict,
                 decode_head: dict,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 pretrained: Optional[str] = None,
                 init_cfg: OptMultiConfig = None,
                 detach_ensemble_inputs: bool = True):
        super().__init__(
            backbone=backbone,
            decode_head=decode_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            pretrained=pretrained,
            init_cfg=init_cfg)
        mode = (test_cfg or {}).get('mode', 'whole')
        if mode != 'whole':
            raise ValueError(f"{self.__class__.__name__} supports test_cfg.mode='whole' only, "
                             f'got {mode!r}')
        self.detach_ensemble_inputs = detach_ensemble_inputs
        # Official: nn.Parameter(torch.ones(num_parallel)).
        self.ensemble_alpha = nn.Parameter(torch.ones(len(STREAMS)))

    @staticmethod
    def _check_inputs(inputs: Dict[str, Tensor]) -> None:
        if not isinstance(inputs, dict) or any(k not in inputs for k in INPUT_KEYS):
            got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise ValueError(f'GeminiFusionEncoderDecoder expects inputs as a dict with keys '
                             f'{INPUT_KEYS} (from RGBDSegDataPreProcessor), got {got}')

    def extract_feat(self, inputs: Dict[str, Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """Backbone features of both streams: two lists of (B, C_i, H_i, W_i) maps."""
        self._check_inputs(inputs)
        return self.backbone(*(inputs[k] for k in INPUT_KEYS))

    def ensemble(self, logits_rgb: Tensor, logits_depth: Tensor) -> Tensor:
        """softmax(alpha)-weighted sum of the two streams' logits, each (B, K, h, w)."""
        if self.detach_ensemble_inputs:
            logits_rgb, logits_depth = logits_rgb.detach(), logits_depth.detach()
        weights = self.ensemble_alpha.softmax(dim=0)
        return weights[0] * logits_rgb + weights[1] * logits_depth

    def _output_logits(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """``{'rgb', 'depth', 'ensemble'}`` -> decoder logits (B, K, h, w)."""
        feats = self.extract_feat(inputs)
        logits = {name: self.decode_head.forward(f) for name, f in zip(STREAMS, feats)}
        logits['ensemble'] = self.ensemble(logits['rgb'], logits['depth'])
        return logits

    def loss(self, inputs: Dict[str, Tensor], data_samples: Sequence[SegDataSample]) -> dict:
        """Decode losses of the three outputs, prefixed ``decode_<output>.``."""
        losses = dict()
        for name, logits in self._output_logits(inputs).items():
            losses.update(add_prefix(
                self.decode_head.loss_by_feat(logits, data_samples), f'decode_{name}'))
        return losses

    def encode_decode(self, inputs: Dict[str, Tensor], batch_img_metas: List[dict]) -> Tensor:
        """Ensemble logits resized to the (padded) input size: (B, K, H, W)."""
        return self.decode_head.predict_by_feat(
            self._output_logits(inputs)['ensemble'], batch_img_metas)

    def predict(self, inputs: Dict[str, Tensor],
                data_samples: Optional[List[SegDataSample]] = None) -> List[SegDataSample]:
        """Predict all three outputs (see the module docstring for the fields set).

        Returns:
            list[SegDataSample]: ``pred_sem_seg``, ``seg_logits`` (ensemble),
            ``pred_sem_seg_rgb``, ``pred_sem_seg_depth``, at each sample's ``ori_shape``
            (padding removed, flips undone, as mmseg's ``postprocess_result``).
        """
        self._check_inputs(inputs)
        only_prediction = data_samples is None
        if not only_prediction:
            batch_img_metas = [ds.metainfo for ds in data_samples]
        else:
            shape = inputs['img'].shape[2:]
            batch_img_metas = [dict(ori_shape=shape, img_shape=shape, pad_shape=shape,
                                    padding_size=[0, 0, 0, 0])] * inputs['img'].shape[0]
        logits = {name: self.decode_head.predict_by_feat(value, batch_img_metas)
                  for name, value in self._output_logits(inputs).items()}
        data_samples = self.postprocess_result(logits['ensemble'], data_samples)
        for name in STREAMS:
            stream = self.postprocess_result(
                logits[name], None if only_prediction else
                [SegDataSample(metainfo=ds.metainfo) for ds in data_samples])
            for ds, stream_ds in zip(data_samples, stream):
                ds.set_field(PixelData(data=stream_ds.pred_sem_seg.data),
                             f'pred_sem_seg_{name}')
        return data_samples

    def _forward(self, inputs: Dict[str, Tensor],
                 data_samples: Optional[List[SegDataSample]] = None
                 ) -> Tuple[Tensor, Tensor, Tensor]:
        """Raw decoder logits (rgb, depth, ensemble), each (B, K, h, w)."""
        logits = self._output_logits(inputs)
        return tuple(logits[name] for name in OUTPUTS)
