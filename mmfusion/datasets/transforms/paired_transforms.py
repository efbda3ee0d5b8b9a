"""Transforms for registered visible/infrared pairs: one geometry, per-modality photometry.

RGB + infrared detectors (Fusion-Mamba, Dong et al., arXiv 2404.09146; DAMF) fuse the two
feature maps position by position, so every geometric augmentation must move both images in the
same way, and the boxes (shared by the pair) exactly once. Each ``Paired*`` class below is mmdet's
own transform, unchanged on ``img``, the boxes and the other stock keys; after it has run, the
parameters it recorded are applied to ``img_ir``:

==================  ==================================  ========================================
class               stock transform (mmdet)             recorded parameter applied to ``img_ir``
==================  ==================================  ========================================
PairedResize        ``Resize``                          output size ``img_shape`` (same
                                                        ``interpolation`` and ``backend``)
PairedRandomFlip    ``RandomFlip``                      ``flip`` and ``flip_direction``
PairedRandomCrop    ``RandomCrop``                      crop box (offset and cropped size)
PairedPad           ``Pad``                             ``pad_shape``, same ``padding_mode``
PairedRandomAffine  ``RandomAffine``                    warp matrix (3 x 3) and output size, same
                                                        ``border_val``
==================  ==================================  ========================================

So ``img_ir`` equals the stock transform applied to the infrared image with the same random
draw (tests/test_datasets/test_paired_pipeline.py checks it pixel for pixel; for
``PairedRandomAffine`` with ``about_center=True`` there is no stock counterpart, and the test
checks the matrix instead). mmcv's
``RandomResize`` and ``RandomChoiceResize`` take ``resize_type='PairedResize'``.

Photometric augmentation is per modality: the stock transform runs on ``img`` as usual, and on
``img_ir`` inside :class:`InfraredTransform` (a key swap, with its own random draw), e.g.
``dict(type='InfraredTransform', transforms=[dict(type='PhotoMetricDistortion')])``.

Paired mosaic: :mod:`mmfusion.datasets.transforms.paired_mosaic`. Not provided: paired
``MixUp``.

Shape shorthand: H, W are image height and width in pixels, C the channel count.
"""
from typing import List, Optional, Union

import cv2
import mmcv
import numpy as np
from mmcv.transforms import KeyMapper
from mmdet.datasets.transforms import Pad, RandomAffine, RandomCrop, RandomFlip, Resize
from mmdet.registry import TRANSFORMS

__all__ = [
    'PairedResize', 'PairedRandomFlip', 'PairedRandomCrop', 'PairedPad', 'PairedRandomAffine',
    'InfraredTransform'
]


def _check_pair(results: dict, name: str) -> None:
    """Raise unless ``results`` holds an ``img``/``img_ir`` pair of equal (H, W).

    Raises:
        KeyError: If ``img`` or ``img_ir`` is missing.
        ValueError: If their heights or widths differ.
    """
    for key in ('img', 'img_ir'):
        if results.get(key) is None:
            raise KeyError(f'{name} needs both "img" and "img_ir"; "{key}" is missing '
                           '(load the pair with LoadPairedImageFromFile)')
    if results['img'].shape[:2] != results['img_ir'].shape[:2]:
        raise ValueError(
            f'{name}: "img" is {results["img"].shape[:2]} (H, W) but "img_ir" is '
            f'{results["img_ir"].shape[:2]}; the pair is out of register')


@TRANSFORMS.register_module()
class PairedResize(Resize):
    """mmdet's ``Resize`` applied to both ``img`` and ``img_ir`` (same output size).

    Args: as :class:`mmdet.datasets.transforms.Resize` (``scale``, ``scale_factor``,
    ``keep_ratio``, ``clip_object_border``, ``backend``, ``interpolation``).

    Required keys: ``img``, ``img_ir`` ((H, W, C) arrays of equal H, W), plus the stock ones.
    Modified keys: ``img_ir`` ((H', W', C)) plus the stock ones (``img``, ``img_shape``,
    ``gt_bboxes``, ...); ``img_ir`` is resized to exactly ``img_shape`` with the same
    interpolation, which is what the stock transform does to ``img`` (``mmcv.imrescale`` is
    ``mmcv.imresize`` to the size it computes).

    Raises:
        KeyError, ValueError: If the pair is missing or of unequal size.
    """

    def _resize_img(self, results: dict) -> None:
        """Resize ``img`` (stock) and then ``img_ir`` to the same ``img_shape``."""
        _check_pair(results, self.__class__.__name__)
        super()._resize_img(results)
        h, w = results['img_shape']
        results['img_ir'] = mmcv.imresize(
            results['img_ir'], (w, h), interpolation=self.interpolation, backend=self.backend)


@TRANSFORMS.register_module()
class PairedRandomFlip(RandomFlip):
    """mmdet's ``RandomFlip`` applied to both ``img`` and ``img_ir`` (one random draw).

    Args: as :class:`mmdet.datasets.transforms.RandomFlip` (``prob``, ``direction``).

    Required keys: ``img``, ``img_ir``, plus the stock ones.
    Modified keys: ``img_ir`` (flipped in ``flip_direction`` when ``flip`` is True) plus the
    stock ones (``img``, ``gt_bboxes``, ...). Added keys: stock (``flip``,
    ``flip_direction``, ``homography_matrix``).

    Raises:
        KeyError, ValueError: If the pair is missing or of unequal size.
    """

    def _flip(self, results: dict) -> None:
        """Flip ``img`` and the annotations (stock), then ``img_ir`` the same way."""
        _check_pair(results, self.__class__.__name__)
        super()._flip(results)
        results['img_ir'] = mmcv.imflip(results['img_ir'], direction=results['flip_direction'])


@TRANSFORMS.register_module()
class PairedRandomCrop(RandomCrop):
    """mmdet's ``RandomCrop`` applied to both ``img`` and ``img_ir`` (same crop box).

    The crop offset is read back from the translation the stock transform records
    (``homography_matrix``, composed onto any earlier one exactly as the stock code does), so
    the random draw happens once, inside the stock code.

    Args: as :class:`mmdet.datasets.transforms.RandomCrop` (``crop_size``, ``crop_type``,
    ``allow_negative_crop``, ``recompute_bbox``, ``bbox_clip_border``).

    Required keys: ``img``, ``img_ir``, plus the stock ones.
    Modified keys: ``img_ir`` ((h, w, C) crop at the same offset) plus the stock ones.

    Returns:
        dict | None: From ``transform``: as the stock transform (``None`` when the crop holds
        no box and ``allow_negative_crop`` is False).

    Raises:
        KeyError, ValueError: If the pair is missing or of unequal size.
    """

    def _crop_data(self, results: dict, crop_size, allow_negative_crop: bool
                   ) -> Union[dict, None]:
        """Crop ``img`` and the annotations (stock), then ``img_ir`` with the same box."""
        _check_pair(results, self.__class__.__name__)
        previous = results.pop('homography_matrix', None)
        results = super()._crop_data(results, crop_size, allow_negative_crop)
        if results is None:
            return None
        crop = results['homography_matrix']  # pure translation by (-offset_w, -offset_h)
        offset_w, offset_h = int(round(-crop[0, 2])), int(round(-crop[1, 2]))
        h, w = results['img'].shape[:2]
        results['img_ir'] = results['img_ir'][offset_h:offset_h + h, offset_w:offset_w + w, ...]
        if previous is not None:
            results['homography_matrix'] = crop @ previous
        return results


@TRANSFORMS.register_module()
class PairedPad(Pad):
    """mmdet's ``Pad`` applied to both ``img`` and ``img_ir`` (same ``pad_shape``).

    Args: as :class:`mmdet.datasets.transforms.Pad` (``size``, ``size_divisor``,
    ``pad_to_square``, ``pad_val``, ``padding_mode``). ``pad_val`` may carry an ``'img_ir'``
    entry for the infrared image; without one, the ``'img'`` value is used for both.

    Required keys: ``img``, ``img_ir``, plus the stock ones.
    Modified keys: ``img_ir`` (padded at the bottom and right to ``pad_shape``) plus the
    stock ones (``img``, ``img_shape``, ``pad_shape``, ...).

    Raises:
        KeyError, ValueError: If the pair is missing or of unequal size.
    """

    def _pad_img(self, results: dict) -> None:
        """Pad ``img`` (stock), then ``img_ir`` to the same ``pad_shape``."""
        _check_pair(results, self.__class__.__name__)
        super()._pad_img(results)
        img_ir = results['img_ir']
        pad_val = self.pad_val.get('img_ir', self.pad_val.get('img', 0))
        if isinstance(pad_val, int) and img_ir.ndim == 3:
            pad_val = tuple(pad_val for _ in range(img_ir.shape[2]))
        results['img_ir'] = mmcv.impad(
            img_ir, shape=results['pad_shape'][:2], pad_val=pad_val,
            padding_mode=self.padding_mode)


@TRANSFORMS.register_module()
class PairedRandomAffine(RandomAffine):
    """mmdet's ``RandomAffine`` applied to both ``img`` and ``img_ir`` (one warp matrix).

    The stock transform draws rotation, scaling, shear and translation once, warps ``img``
    with ``cv2.warpPerspective`` to (H + 2 border_y, W + 2 border_x) and projects the boxes;
    the matrix it drew is then applied to ``img_ir`` with the same call and ``border_val``.

    ``about_center=True`` warps about the image centre instead of the top-left corner: the
    input centre maps to the output centre plus the random translation, i.e. the matrix is
    ``T(w_out / 2 + t_x, h_out / 2 + t_y) @ Shear @ Rotation @ Scale @ T(-w_in / 2, -h_in / 2)``.
    That is YOLOv5's ``random_perspective`` (used after the mosaic by the official
    Fusion-Mamba code, ``utils/datasets.py``, with ``border = -img_size / 2``), whose output is a
    window around the mosaic canvas's centre; the stock matrix (``about_center=False``, the
    default) keeps the top-left corner fixed, so with a negative ``border`` its window lies at
    the canvas's top-left.

    Args: as :class:`mmdet.datasets.transforms.RandomAffine` (``max_rotate_degree``,
    ``max_translate_ratio``, ``scaling_ratio_range``, ``max_shear_degree``, ``border``
    (x, y) in pixels, ``border_val``, ``bbox_clip_border``), plus

        about_center (bool): Warp about the image centre (see above). Defaults to False.

    Required keys: ``img``, ``img_ir`` ((H, W, C) arrays of equal H, W), plus the stock ones.
    Modified keys: ``img_ir`` ((H + 2 border_y, W + 2 border_x, C)) plus the stock ones
    (``img``, ``img_shape``, ``gt_bboxes``, ``gt_bboxes_labels``, ``gt_ignore_flags``).

    Raises:
        KeyError, ValueError: If the pair is missing or of unequal size.
    """

    def __init__(self, *args, about_center: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.about_center = about_center
        self._warp_matrix = None  # the matrix of the current call, read back by transform

    def _get_random_homography_matrix(self, height: int, width: int) -> np.ndarray:
        """The stock random matrix for an output of (height, width) pixels, made to warp
        about the centre when ``about_center`` is set; remembered for ``img_ir``."""
        matrix = super()._get_random_homography_matrix(height, width)
        if self.about_center:
            in_w, in_h = width - 2 * self.border[0], height - 2 * self.border[1]
            to_origin = self._get_translation_matrix(-in_w / 2, -in_h / 2)
            to_centre = self._get_translation_matrix(width / 2, height / 2)
            matrix = to_centre @ matrix @ to_origin
        self._warp_matrix = matrix
        return matrix

    def transform(self, results: dict) -> dict:
        """Warp ``img`` and the boxes (stock), then ``img_ir`` with the same matrix."""
        _check_pair(results, self.__class__.__name__)
        img_ir = results['img_ir']
        self._warp_matrix = None
        results = super().transform(results)
        h, w = results['img'].shape[:2]
        results['img_ir'] = cv2.warpPerspective(
            img_ir, self._warp_matrix, dsize=(w, h), borderValue=self.border_val)
        return results

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f', about_center={self.about_center})'


@TRANSFORMS.register_module()
class InfraredTransform(KeyMapper):
    """Run stock image transforms on ``img_ir`` (seen by them as ``img``); ``img`` untouched.

    mmcv's :class:`~mmcv.transforms.KeyMapper` with the mapping ``{'img': 'img_ir'}``: the
    wrapped transforms read and write ``img``, which is the infrared image, and only that key
    is written back (to ``img_ir``). Meant for photometric transforms (brightness, contrast,
    noise), drawn independently of those on the visible image. Transforms that change the
    image size or need annotations in step with the image must not be wrapped.

    Args:
        transforms (list[dict | callable]): Transforms (configs or objects) to run on the
            infrared image.

    Raises:
        ValueError: From ``transform``, if the wrapped transforms changed the image's
            (H, W) (a geometric transform was wrapped) or returned ``None``.
    """

    def __init__(self, transforms: List[Union[dict, callable]]) -> None:
        super().__init__(transforms=transforms, mapping={'img': 'img_ir'}, auto_remap=True)

    def transform(self, results: dict) -> Optional[dict]:
        """Apply the wrapped transforms to ``results['img_ir']``.

        Returns:
            dict: ``results`` with ``img_ir`` replaced (same (H, W)).
        """
        shape = results['img_ir'].shape[:2]
        results = super().transform(results)
        if results['img_ir'].shape[:2] != shape:
            raise ValueError(
                f'{self.__class__.__name__}: the wrapped transforms changed the infrared '
                f'image from {shape} to {results["img_ir"].shape[:2]} (H, W); wrap only '
                'photometric transforms, use the Paired* transforms for geometry')
        return results
