"""Pack an RGB image, its encoded depth and the label map for an mmseg RGB + depth segmentor.

Input format (GeminiFusion segmentation, as for the paired RGB + infrared detectors): ``inputs``
is a dict ``{'img': (3, H, W) uint8 tensor, 'img_depth': (3, H, W) float32 tensor}`` per sample,
not a 6-channel tensor, so each modality keeps its own dtype and normalisation and the
two-modality backbone takes each by name. mmseg's ``SegDataPreProcessor`` batches only tensors;
:class:`~mmfusion.models.data_preprocessors.RGBDSegDataPreProcessor` batches these dicts.
"""
import numpy as np
import torch
from mmcv.transforms import to_tensor
from mmseg.datasets.transforms import PackSegInputs
from mmseg.registry import TRANSFORMS

from .rgbd_transforms import check_rgbd

__all__ = ['PackRGBDSegInputs']


def _image_to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, C) or (H, W) array -> contiguous (C, H, W) tensor (as mmseg's PackSegInputs)."""
    if img.ndim < 3:
        img = np.expand_dims(img, -1)
    return to_tensor(np.ascontiguousarray(img.transpose(2, 0, 1)))


@TRANSFORMS.register_module()
class PackRGBDSegInputs(PackSegInputs):
    """mmseg's ``PackSegInputs`` with ``inputs = dict(img=..., img_depth=...)``.

    The data sample (``gt_sem_seg``, meta) is packed by the stock code.

    Args:
        meta_keys (Sequence[str]): Keys copied into the data sample's metainfo. Defaults to
            the stock keys plus ``'depth_path'``.

    Returns:
        dict: From ``transform``: ``inputs`` (dict of ``img`` (C, H, W) and ``img_depth``
        (C, H, W) tensors) and ``data_samples`` (:class:`~mmseg.structures.SegDataSample`).

    Raises:
        KeyError, ValueError: If ``img`` or ``img_depth`` is missing, or their (H, W) differ.
    """

    def __init__(self,
                 meta_keys=('img_path', 'depth_path', 'seg_map_path', 'ori_shape', 'img_shape',
                            'pad_shape', 'scale_factor', 'flip', 'flip_direction',
                            'reduce_zero_label')) -> None:
        super().__init__(meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        check_rgbd(results, self.__class__.__name__)
        packed = super().transform(results)
        packed['inputs'] = dict(img=packed['inputs'],
                                img_depth=_image_to_tensor(results['img_depth']))
        return packed
