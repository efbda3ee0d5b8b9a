"""Batch visible/infrared pairs for mmdet RGB + infrared detectors (Fusion-Mamba, DAMF).

Shape shorthand: B is the batch size, C = 3 the channels of each modality, (h_i, w_i) the size
of sample i (equal for its two images), (H, W) the batch shape: the largest h_i, w_i rounded up
to ``pad_size_divisor``.

Input (from :class:`~mmfusion.datasets.transforms.PackPairedDetInputs` and mmengine's
``pseudo_collate``): ``data['inputs'] = {'img': [B x (C, h_i, w_i)], 'img_ir': [B x (C, h_i,
w_i)]}`` uint8 tensors (``default_collate``'s ``(B, C, h, w)`` tensors are accepted too).
Output: ``{'inputs': {'img': (B, C, H, W), 'img_ir': (B, C, H, W)}, 'data_samples': [...]}``
float32, each modality normalised with its own mean/std, both zero-padded (``pad_value`` after
normalisation, as mmengine's ``ImgDataPreprocessor``) at the bottom and right to (H, W).
"""
from numbers import Number
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.models.utils.misc import samplelist_boxtype2tensor
from mmdet.registry import MODELS
from mmengine.model.utils import stack_batch

__all__ = ['PairedDetDataPreprocessor']

_MODALITIES = ('img', 'img_ir')


@MODELS.register_module()
class PairedDetDataPreprocessor(DetDataPreprocessor):
    """mmdet's ``DetDataPreprocessor`` for dict inputs ``{'img', 'img_ir'}``.

    Per modality: optional BGR<->RGB swap, cast to float32, ``(x - mean) / std``; then both
    modalities are stacked and padded to the same (H, W). Each data sample gets the stock
    ``batch_input_shape`` ((H, W)) and ``pad_shape`` ((h_i, w_i) rounded up to
    ``pad_size_divisor``), boxes are turned into tensors (``boxtype2tensor``) and masks /
    semantic maps padded as in the stock class.

    Args:
        mean (Sequence[Number], optional): Visible per-channel mean (1 or 3 values, pixels in
            the loaded channel order). None: no normalisation. Defaults to None.
        std (Sequence[Number], optional): Visible per-channel std. Defaults to None.
        ir_mean (Sequence[Number], optional): Infrared per-channel mean (1 or 3 values).
            Required when ``mean`` is given. Defaults to None.
        ir_std (Sequence[Number], optional): Infrared per-channel std. Defaults to None.
        bgr_to_rgb (bool): Swap channels 0 and 2 of the visible image. Defaults to False.
        rgb_to_bgr (bool): Same swap (the other name). Defaults to False.
        ir_bgr_to_rgb (bool, optional): Swap channels of the infrared image; None follows
            ``bgr_to_rgb or rgb_to_bgr``. Defaults to None.
        pad_size_divisor (int): The batch (H, W) is a multiple of it. Defaults to 1.
        pad_value (Number): Value of the padded pixels (after normalisation). Defaults to 0.
        **kwargs: ``pad_mask``, ``mask_pad_value``, ``pad_seg``, ``seg_pad_value``,
            ``boxtype2tensor``, ``non_blocking`` of :class:`DetDataPreprocessor`.

    Raises:
        ValueError: If ``mean``/``std`` and ``ir_mean``/``ir_std`` are not all given or all
            None, if a mean/std has a length other than 1 or 3, or if ``batch_augments`` is
            passed (the stock batch augments take tensor inputs; not supported here).
    """

    def __init__(self,
                 mean: Optional[Sequence[Number]] = None,
                 std: Optional[Sequence[Number]] = None,
                 ir_mean: Optional[Sequence[Number]] = None,
                 ir_std: Optional[Sequence[Number]] = None,
                 bgr_to_rgb: bool = False,
                 rgb_to_bgr: bool = False,
                 ir_bgr_to_rgb: Optional[bool] = None,
                 pad_size_divisor: int = 1,
                 pad_value: Union[float, int] = 0,
                 batch_augments: Optional[List[dict]] = None,
                 **kwargs) -> None:
        given = [v is not None for v in (mean, std, ir_mean, ir_std)]
        if any(given) and not all(given):
            raise ValueError(
                f'{self.__class__.__name__}: give mean, std, ir_mean and ir_std all (each '
                'modality is normalised with its own statistics) or none of them; got '
                f'mean={mean}, std={std}, ir_mean={ir_mean}, ir_std={ir_std}')
        for name, value in (('mean', mean), ('std', std), ('ir_mean', ir_mean),
                            ('ir_std', ir_std)):
            if value is not None and len(value) not in (1, 3):
                raise ValueError(f'{name} must have 1 or 3 values, got {value}')
        if batch_augments is not None:
            raise ValueError(
                f'{self.__class__.__name__} does not support batch_augments (the stock ones '
                'take a single image tensor)')
        super().__init__(
            mean=mean,
            std=std,
            pad_size_divisor=pad_size_divisor,
            pad_value=pad_value,
            bgr_to_rgb=bgr_to_rgb,
            rgb_to_bgr=rgb_to_bgr,
            **kwargs)
        if ir_mean is not None:
            self.register_buffer('ir_mean', torch.tensor(ir_mean).view(-1, 1, 1), False)
            self.register_buffer('ir_std', torch.tensor(ir_std).view(-1, 1, 1), False)
        self._ir_channel_conversion = (self._channel_conversion
                                       if ir_bgr_to_rgb is None else ir_bgr_to_rgb)

    def _normalise(self, imgs: List[torch.Tensor], modality: str) -> torch.Tensor:
        """Channel swap, float cast, normalisation and padding of one modality.

        Args:
            imgs (list[Tensor]): B tensors (C, h_i, w_i).
            modality (str): ``'img'`` or ``'img_ir'``.

        Returns:
            Tensor: (B, C, H, W) float32.
        """
        if modality == 'img':
            swap, mean, std = self._channel_conversion, getattr(self, 'mean', None), \
                getattr(self, 'std', None)
        else:
            swap, mean, std = self._ir_channel_conversion, getattr(self, 'ir_mean', None), \
                getattr(self, 'ir_std', None)
        out = []
        for i, img in enumerate(imgs):
            if img.dim() != 3:
                raise ValueError(f'inputs["{modality}"][{i}] must be (C, H, W), got '
                                 f'{tuple(img.shape)}')
            if swap:
                if img.shape[0] != 3:
                    raise ValueError(f'channel swap needs 3 channels, inputs["{modality}"]'
                                     f'[{i}] has {img.shape[0]}')
                img = img[[2, 1, 0], ...]
            img = img.float()
            if self._enable_normalize:
                if mean.shape[0] == 3 and img.shape[0] != 3:
                    raise ValueError(f'3-value mean/std need 3 channels, inputs["{modality}"]'
                                     f'[{i}] has {img.shape[0]}')
                img = (img - mean) / std
            out.append(img)
        return stack_batch(out, self.pad_size_divisor, self.pad_value)

    def forward(self, data: dict, training: bool = False) -> dict:
        """Normalise, pad and batch both modalities; set the stock data-sample meta.

        Args:
            data (dict): ``{'inputs': {'img': ..., 'img_ir': ...}, 'data_samples': [...]}``
                from the dataloader (see module docstring).
            training (bool): Whether in training (pads masks / semantic maps if enabled).

        Returns:
            dict: ``{'inputs': {'img': (B, C, H, W), 'img_ir': (B, C, H, W)},
            'data_samples': list[DetDataSample] | None}``.

        Raises:
            TypeError: If ``data['inputs']`` is not a dict with ``img`` and ``img_ir``.
            ValueError: If the two images of a sample differ in (H, W), or the two
                modalities hold different numbers of samples.
        """
        data = self.cast_data(data)
        inputs = data['inputs']
        if not isinstance(inputs, dict) or set(inputs) != set(_MODALITIES):
            raise TypeError(
                f'{self.__class__.__name__} expects inputs as a dict with keys {_MODALITIES} '
                f'(from PackPairedDetInputs), got '
                f'{sorted(inputs) if isinstance(inputs, dict) else type(inputs)}')
        per_modality = {}
        for key in _MODALITIES:
            value = inputs[key]
            per_modality[key] = list(value.unbind(0)) if isinstance(value, torch.Tensor) \
                else list(value)
        vis, ir = per_modality['img'], per_modality['img_ir']
        if len(vis) != len(ir):
            raise ValueError(f'{len(vis)} visible but {len(ir)} infrared images in the batch')
        for i, (a, b) in enumerate(zip(vis, ir)):
            if a.shape[-2:] != b.shape[-2:]:
                raise ValueError(
                    f'sample {i}: visible image is {tuple(a.shape[-2:])} (H, W) but infrared '
                    f'is {tuple(b.shape[-2:])}')
        div = self.pad_size_divisor
        batch_pad_shape = [(int(np.ceil(a.shape[-2] / div)) * div,
                            int(np.ceil(a.shape[-1] / div)) * div) for a in vis]
        batch = {key: self._normalise(per_modality[key], key) for key in _MODALITIES}

        data_samples = data.get('data_samples', None)
        if data_samples is not None:
            batch_input_shape = tuple(batch['img'].shape[-2:])
            for data_sample, pad_shape in zip(data_samples, batch_pad_shape):
                data_sample.set_metainfo({
                    'batch_input_shape': batch_input_shape,
                    'pad_shape': pad_shape
                })
            if self.boxtype2tensor:
                samplelist_boxtype2tensor(data_samples)
            if self.pad_mask and training:
                self.pad_gt_masks(data_samples)
            if self.pad_seg and training:
                self.pad_gt_sem_seg(data_samples)
        return {'inputs': batch, 'data_samples': data_samples}
