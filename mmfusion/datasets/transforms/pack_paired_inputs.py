"""Pack a visible/infrared pair and its annotations for an mmdet RGB + infrared detector.

Input format chosen for the paired detectors (Fusion-Mamba, DAMF): ``inputs`` is a dict
``{'img': (3, H, W) uint8 tensor, 'img_ir': (3, H, W) uint8 tensor}`` per sample, not a
6-channel tensor. Reasons: each modality keeps its own normalisation and channel order,
the two backbone streams take their image by name, and a stock single-modality detector can be
fed one modality by key. mmdet's ``DetDataPreprocessor`` batches only tensors (and asserts 1 or 3
mean values), so these inputs are batched by
:class:`~mmfusion.models.data_preprocessors.PairedDetDataPreprocessor`, which returns
``{'img': (B, 3, H, W), 'img_ir': (B, 3, H, W)}`` float tensors.
"""
import numpy as np
import torch
from mmcv.transforms import to_tensor
from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import TRANSFORMS

__all__ = ['PackPairedDetInputs']


def _image_to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, C) or (H, W) array -> (C, H, W) contiguous tensor (as mmdet's PackDetInputs)."""
    if img.ndim < 3:
        img = np.expand_dims(img, -1)
    if not img.flags.c_contiguous:
        return to_tensor(np.ascontiguousarray(img.transpose(2, 0, 1)))
    return to_tensor(img).permute(2, 0, 1).contiguous()


@TRANSFORMS.register_module()
class PackPairedDetInputs(PackDetInputs):
    """mmdet's ``PackDetInputs`` with ``inputs = dict(img=..., img_ir=...)``.

    The data sample (``gt_instances``, ``ignored_instances``, ``gt_sem_seg``, meta) is packed
    by the stock code, once, since the boxes are shared by the pair.

    Args:
        meta_keys (Sequence[str]): Keys copied into the data sample's metainfo. Defaults to
            the stock keys plus ``'img_ir_path'``.

    Returns:
        dict: From ``transform``: ``inputs`` (dict: ``img`` (C, H, W) and ``img_ir``
        (C, H, W) tensors, the dtype of the arrays, usually uint8) and ``data_samples``
        (:class:`~mmdet.structures.DetDataSample`).

    Raises:
        KeyError: If ``img`` or ``img_ir`` is missing.
        ValueError: If their (H, W) differ.
    """

    def __init__(self,
                 meta_keys=('img_id', 'img_path', 'img_ir_path', 'ori_shape', 'img_shape',
                            'scale_factor', 'flip', 'flip_direction')) -> None:
        super().__init__(meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        """Pack the pair into tensors and the annotations into a ``DetDataSample``."""
        for key in ('img', 'img_ir'):
            if results.get(key) is None:
                raise KeyError(f'{self.__class__.__name__} needs "img" and "img_ir"; '
                               f'"{key}" is missing')
        if results['img'].shape[:2] != results['img_ir'].shape[:2]:
            raise ValueError(
                f'{self.__class__.__name__}: "img" is {results["img"].shape[:2]} (H, W) but '
                f'"img_ir" is {results["img_ir"].shape[:2]}; use the Paired* transforms for '
                'every geometric step')
        packed = super().transform(results)
        packed['inputs'] = dict(img=packed['inputs'], img_ir=_image_to_tensor(results['img_ir']))
        return packed
