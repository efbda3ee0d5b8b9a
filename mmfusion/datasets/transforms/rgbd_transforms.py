"""Geometric transforms for pixel-aligned RGB + depth (GeminiFusion segmentation, mmseg).

GeminiFusion (Jia et al., ICML 2024, arXiv 2406.01210) fuses the two modalities token by token,
so every geometric augmentation must move the RGB image ``img``, the encoded depth ``img_depth``
and the label map identically. Each class below is mmseg's own transform, unchanged on ``img``
and the segmentation maps (``seg_fields``), with the same random draw applied to ``img_depth``:

================  ==========================  =================================================
class             stock transform (mmseg)     how ``img_depth`` follows
================  ==========================  =================================================
RGBDResize        ``Resize``                  resized to the new ``img_shape`` with ``img``'s
                                              interpolation (bilinear by default, as the
                                              official code resizes depth) and backend
RGBDRandomFlip    ``RandomFlip``              flipped when ``flip``, in ``flip_direction``
RGBDRandomCrop    ``RandomCrop``              cropped by the stock code itself: it is added to
                                              ``seg_fields`` for the call, so the one crop box
                                              (drawn with ``cat_max_ratio``) crops all maps
================  ==========================  =================================================

mmcv's ``RandomResize`` takes ``resize_type='RGBDResize'``. Photometric transforms (e.g. mmseg's
``PhotoMetricDistortion``) read and write ``img`` only, so they leave depth untouched.
tests/test_datasets/test_nyudv2_dataset.py checks the alignment pixel for pixel.
"""
import mmcv
from mmseg.datasets.transforms import RandomCrop, RandomFlip, Resize
from mmseg.registry import TRANSFORMS

__all__ = ['RGBDResize', 'RGBDRandomFlip', 'RGBDRandomCrop']


def check_rgbd(results: dict, name: str) -> None:
    """Raise unless ``results`` holds ``img`` and ``img_depth`` of equal (H, W).

    Raises:
        KeyError: If either is missing.
        ValueError: If their (H, W) differ (names the files).
    """
    for key in ('img', 'img_depth'):
        if results.get(key) is None:
            raise KeyError(f'{name} needs "img" and "img_depth"; "{key}" is missing (load depth '
                           'with LoadDepthFromFile and EncodeDepth)')
    if results['img'].shape[:2] != results['img_depth'].shape[:2]:
        raise ValueError(
            f'{name}: "img" ({results.get("img_path")}) is {results["img"].shape[:2]} (H, W) but '
            f'"img_depth" ({results.get("depth_path")}) is {results["img_depth"].shape[:2]}')


@TRANSFORMS.register_module()
class RGBDResize(Resize):
    """mmseg's ``Resize`` applied to ``img``, the seg maps and ``img_depth``.

    Args: as :class:`mmseg.datasets.transforms.Resize`.
    Required/modified keys: the stock ones plus ``img_depth`` ((H', W', C) like ``img``).

    Raises:
        KeyError, ValueError: If ``img``/``img_depth`` are missing or of unequal (H, W).
    """

    def _resize_img(self, results: dict) -> None:
        check_rgbd(results, self.__class__.__name__)
        super()._resize_img(results)
        h, w = results['img_shape']
        results['img_depth'] = mmcv.imresize(
            results['img_depth'], (w, h), interpolation=self.interpolation,
            backend=self.backend)


@TRANSFORMS.register_module()
class RGBDRandomFlip(RandomFlip):
    """mmseg's ``RandomFlip`` applied to ``img``, the seg maps and ``img_depth`` (one draw).

    Args: as :class:`mmseg.datasets.transforms.RandomFlip`.
    Required/modified keys: the stock ones plus ``img_depth``.

    Raises:
        KeyError, ValueError: If ``img``/``img_depth`` are missing or of unequal (H, W).
    """

    def _flip(self, results: dict) -> None:
        check_rgbd(results, self.__class__.__name__)
        super()._flip(results)
        results['img_depth'] = mmcv.imflip(results['img_depth'],
                                           direction=results['flip_direction'])


@TRANSFORMS.register_module()
class RGBDRandomCrop(RandomCrop):
    """mmseg's ``RandomCrop`` (incl. ``cat_max_ratio``) applied to ``img``, the seg maps and
    ``img_depth`` with one crop box.

    Args: as :class:`mmseg.datasets.transforms.RandomCrop`.
    Required/modified keys: the stock ones plus ``img_depth``.

    Raises:
        KeyError, ValueError: If ``img``/``img_depth`` are missing or of unequal (H, W).
    """

    def transform(self, results: dict) -> dict:
        check_rgbd(results, self.__class__.__name__)
        seg_fields = results.get('seg_fields', [])
        results['seg_fields'] = [*seg_fields, 'img_depth']
        results = super().transform(results)
        results['seg_fields'] = seg_fields
        return results
