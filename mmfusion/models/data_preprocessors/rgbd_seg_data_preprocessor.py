"""Batch RGB + encoded-depth pairs for mmseg RGB + depth segmentors (GeminiFusion).

Shape shorthand: B batch size, (h_i, w_i) the size of sample i (equal for its RGB and depth),
(H, W) the batch size after padding (``size``, or the largest h_i, w_i rounded up to
``size_divisor``).

Input (from :class:`~mmfusion.datasets.transforms.PackRGBDSegInputs` and mmengine's
``pseudo_collate``): ``data['inputs'] = {'img': [B x (3, h_i, w_i)] uint8, 'img_depth':
[B x (3, h_i, w_i)] float32}`` (stacked ``(B, 3, h, w)`` tensors are accepted too).
Output: ``{'inputs': {'img': (B, 3, H, W), 'img_depth': (B, 3, H, W)}, 'data_samples': [...]}``
float32, each modality normalised with its own mean/std, then padded at the bottom and right with
``pad_val`` (after normalisation, as mmseg's ``SegDataPreProcessor``); labels padded with
``seg_pad_val`` in training.
"""
from numbers import Number
from typing import Any, Dict, List, Optional, Sequence

import torch
from mmseg.models.data_preprocessor import SegDataPreProcessor
from mmseg.registry import MODELS
from mmseg.utils import stack_batch

__all__ = ['RGBDSegDataPreProcessor']

_MODALITIES = ('img', 'img_depth')


@MODELS.register_module()
class RGBDSegDataPreProcessor(SegDataPreProcessor):
    """mmseg's ``SegDataPreProcessor`` for dict inputs ``{'img', 'img_depth'}``.

    Args:
        mean, std (Sequence[Number], optional): RGB per-channel mean/std (pixel units, in the
            order after ``bgr_to_rgb``). None: no normalisation of either modality.
        depth_mean, depth_std (Sequence[Number], optional): Encoded-depth per-channel mean/std
            (metres for :class:`~mmfusion.datasets.transforms.EncodeDepth`). Required when
            ``mean`` is given.
        size, size_divisor, pad_val, seg_pad_val, bgr_to_rgb, rgb_to_bgr, test_cfg: As
            ``SegDataPreProcessor``; the channel swap applies to RGB only, padding to both.

    Raises:
        ValueError: If ``mean``/``std``/``depth_mean``/``depth_std`` are not all given or all
            None, or ``batch_augments`` is given (the stock ones take one image tensor); from
            ``forward``, if the inputs are not the dict above, or a sample's RGB and depth
            differ in (H, W).
    """

    def __init__(self,
                 mean: Optional[Sequence[Number]] = None,
                 std: Optional[Sequence[Number]] = None,
                 depth_mean: Optional[Sequence[Number]] = None,
                 depth_std: Optional[Sequence[Number]] = None,
                 size: Optional[tuple] = None,
                 size_divisor: Optional[int] = None,
                 pad_val: Number = 0,
                 seg_pad_val: Number = 255,
                 bgr_to_rgb: bool = False,
                 rgb_to_bgr: bool = False,
                 batch_augments: Optional[List[dict]] = None,
                 test_cfg: Optional[dict] = None) -> None:
        given = [v is not None for v in (mean, std, depth_mean, depth_std)]
        if any(given) and not all(given):
            raise ValueError(
                f'{self.__class__.__name__}: give mean, std, depth_mean and depth_std all (each '
                'modality is normalised with its own statistics) or none of them; got '
                f'mean={mean}, std={std}, depth_mean={depth_mean}, depth_std={depth_std}')
        if batch_augments is not None:
            raise ValueError(f'{self.__class__.__name__} does not support batch_augments')
        super().__init__(mean=mean, std=std, size=size, size_divisor=size_divisor,
                         pad_val=pad_val, seg_pad_val=seg_pad_val, bgr_to_rgb=bgr_to_rgb,
                         rgb_to_bgr=rgb_to_bgr, test_cfg=test_cfg)
        if depth_mean is not None:
            self.register_buffer('depth_mean', torch.tensor(depth_mean).view(-1, 1, 1), False)
            self.register_buffer('depth_std', torch.tensor(depth_std).view(-1, 1, 1), False)

    def _normalise(self, imgs: List[torch.Tensor], modality: str) -> List[torch.Tensor]:
        """Channel swap (RGB only), float cast and normalisation of one modality's samples."""
        out = []
        for i, img in enumerate(imgs):
            if img.dim() != 3:
                raise ValueError(f'inputs["{modality}"][{i}] must be (C, H, W), got '
                                 f'{tuple(img.shape)}')
            if modality == 'img' and self.channel_conversion and img.shape[0] == 3:
                img = img[[2, 1, 0], ...]
            img = img.float()
            if self._enable_normalize:
                if modality == 'img':
                    img = (img - self.mean) / self.std
                else:
                    img = (img - self.depth_mean) / self.depth_std
            out.append(img)
        return out

    def forward(self, data: dict, training: bool = False) -> Dict[str, Any]:
        """Normalise, pad and batch both modalities (see the module docstring).

        Returns:
            dict: ``{'inputs': {'img': (B, 3, H, W), 'img_depth': (B, 3, H, W)},
            'data_samples': list[SegDataSample] | None}``.
        """
        data = self.cast_data(data)
        inputs = data['inputs']
        if not isinstance(inputs, dict) or set(inputs) != set(_MODALITIES):
            raise ValueError(
                f'{self.__class__.__name__} expects inputs as a dict with keys {_MODALITIES} '
                f'(from PackRGBDSegInputs), got '
                f'{sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__}')
        per_modality = {k: list(v.unbind(0)) if isinstance(v, torch.Tensor) else list(v)
                        for k, v in inputs.items()}
        rgb, depth = per_modality['img'], per_modality['img_depth']
        if len(rgb) != len(depth):
            raise ValueError(f'{len(rgb)} RGB but {len(depth)} depth images in the batch')
        for i, (a, b) in enumerate(zip(rgb, depth)):
            if a.shape[-2:] != b.shape[-2:]:
                raise ValueError(f'sample {i}: RGB is {tuple(a.shape[-2:])} (H, W) but depth '
                                 f'is {tuple(b.shape[-2:])}')
        normalised = {k: self._normalise(v, k) for k, v in per_modality.items()}
        data_samples = data.get('data_samples', None)
        batch = {}
        if training:
            if data_samples is None:
                raise ValueError('data_samples are required in training')
            batch['img'], data_samples = stack_batch(
                normalised['img'], data_samples, size=self.size, size_divisor=self.size_divisor,
                pad_val=self.pad_val, seg_pad_val=self.seg_pad_val)
            batch['img_depth'], _ = stack_batch(
                normalised['img_depth'], None, size=self.size, size_divisor=self.size_divisor,
                pad_val=self.pad_val, seg_pad_val=self.seg_pad_val)
        elif self.test_cfg:
            size = self.test_cfg.get('size', None)
            size_divisor = self.test_cfg.get('size_divisor', None)
            for key in _MODALITIES:
                batch[key], padded = stack_batch(
                    normalised[key], size=size, size_divisor=size_divisor,
                    pad_val=self.pad_val, seg_pad_val=self.seg_pad_val)
            if data_samples is not None:
                for data_sample, pad_info in zip(data_samples, padded):
                    data_sample.set_metainfo({**pad_info})
        else:
            shape = normalised['img'][0].shape[1:]
            if not all(x.shape[1:] == shape for x in normalised['img']):
                raise ValueError('the images of a test batch must have the same size '
                                 '(or set test_cfg=dict(size_divisor=...))')
            batch = {k: torch.stack(v, dim=0) for k, v in normalised.items()}
        return dict(inputs=batch, data_samples=data_samples)
