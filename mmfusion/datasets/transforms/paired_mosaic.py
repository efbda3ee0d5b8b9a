"""Mosaic augmentation for registered visible/infrared pairs (RGB + infrared detection).

The YOLO training recipe that Fusion-Mamba follows (W. Dong et al., arXiv 2404.09146; official
code github.com/EhanDong/Fusion-Mamba, ``data/hyp.scratch.yaml``: ``mosaic: 1.0``) tiles four
training images into one. For a pair, both modalities must be tiled with the same four samples
at the same places, or the fused features (position by position) and the shared boxes would no
longer match either image.

:class:`PairedMosaic` is mmdet's :class:`~mmdet.datasets.transforms.Mosaic`, run twice with one
random draw: once on the infrared view of the sample (``img_ir`` of the sample and of its three
``mix_results`` seen as ``img``), then, with numpy's random state restored, on the sample itself
(the stock pass, which sets ``img``, ``img_shape`` and the boxes). Both passes draw the same
probability test and mosaic centre, so ``img_ir`` is the stock mosaic of the four infrared images
with exactly the visible placement. After the transform numpy's random state is where one stock
pass would have left it.

The three extra samples come from mmdet's :class:`~mmdet.datasets.MultiImageMixDataset` wrapper,
which runs the wrapped dataset's own pipeline for them; with
:class:`~mmfusion.datasets.PairedCocoDataset` and ``LoadPairedImageFromFile`` in that pipeline
each of them carries its ``img_ir``::

    train_dataset = dict(
        type='MultiImageMixDataset',
        dataset=dict(type='PairedCocoDataset', ...,
                     pipeline=[dict(type='LoadPairedImageFromFile'),
                               dict(type='LoadAnnotations', with_bbox=True)]),
        pipeline=[dict(type='PairedMosaic', img_scale=(640, 640), pad_val=114.0), ...])

Shape shorthand: H, W image height and width; (w_s, h_s) = ``img_scale``; the mosaic canvas is
(2 h_s, 2 w_s).
"""
from typing import Optional

import numpy as np
from mmdet.datasets.transforms import Mosaic
from mmdet.registry import TRANSFORMS

__all__ = ['PairedMosaic']

_BOX_KEYS = ('gt_bboxes', 'gt_bboxes_labels', 'gt_ignore_flags')


def _infrared_view(sample: dict, where: str) -> dict:
    """A dict in which ``img`` is the sample's ``img_ir`` (boxes shared, not copied).

    Raises:
        KeyError: If ``img`` or ``img_ir`` is missing.
        ValueError: If they differ in (H, W).
    """
    for key in ('img', 'img_ir'):
        if sample.get(key) is None:
            raise KeyError(
                f'PairedMosaic: {where} has no "{key}"; load every sample, the three extra '
                'mosaic samples included, with LoadPairedImageFromFile in the pipeline of the '
                'dataset that MultiImageMixDataset wraps')
    if sample['img'].shape[:2] != sample['img_ir'].shape[:2]:
        raise ValueError(
            f'PairedMosaic: {where}: "img" is {sample["img"].shape[:2]} (H, W) but "img_ir" '
            f'is {sample["img_ir"].shape[:2]}; the pair is out of register')
    view = {key: sample[key] for key in _BOX_KEYS if key in sample}
    view['img'] = sample['img_ir']
    return view


@TRANSFORMS.register_module()
class PairedMosaic(Mosaic):
    """mmdet's ``Mosaic`` applied with one placement to ``img`` and ``img_ir``.

    Args: as :class:`mmdet.datasets.transforms.Mosaic` (``img_scale`` (w_s, h_s),
    ``center_ratio_range``, ``bbox_clip_border``, ``pad_val`` (both modalities), ``prob``).

    Required keys: ``img``, ``img_ir`` ((H, W, C) of equal H, W), ``gt_bboxes``,
    ``gt_bboxes_labels``, ``gt_ignore_flags``, ``mix_results`` (3 dicts with the same keys, set
    by ``MultiImageMixDataset``).
    Modified keys: ``img``, ``img_ir`` ((2 h_s, 2 w_s, C) each), ``img_shape``, ``gt_bboxes``,
    ``gt_bboxes_labels``, ``gt_ignore_flags`` (the stock ones, once).

    Raises:
        KeyError: If the sample or a mix result lacks ``img`` or ``img_ir``.
        ValueError: If an image pair differs in (H, W).
        AssertionError: (stock) if ``mix_results`` is missing when the mosaic is applied.
    """

    def transform(self, results: dict) -> Optional[dict]:
        """Tile the sample and its three ``mix_results`` into one mosaic, both modalities.

        Args:
            results (dict): The sample, with ``mix_results``.

        Returns:
            dict: ``results`` with both mosaics and the transformed boxes (unchanged when
            the ``prob`` test skips the mosaic).
        """
        ir_view = _infrared_view(results, 'the sample')
        if 'mix_results' in results:
            ir_view['mix_results'] = [
                _infrared_view(mix, f'mix_results[{i}]')
                for i, mix in enumerate(results['mix_results'])
            ]
        state = np.random.get_state()  # Mosaic draws from numpy's global random state
        ir_view = super().transform(ir_view)
        np.random.set_state(state)
        results = super().transform(results)
        results['img_ir'] = ir_view['img']
        return results
