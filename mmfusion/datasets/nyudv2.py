"""NYU Depth v2 (NYUDv2) RGB-D semantic segmentation, 40 classes, for mmseg.

Dataset: N. Silberman, D. Hoiem, P. Kohli, R. Fergus, "Indoor Segmentation and Support Inference
from RGBD Images", ECCV 2012; 40-class labels of S. Gupta, P. Arbelaez, J. Malik, "Perceptual
Organization and Recognition of Indoor Scenes from RGB-D Images", CVPR 2013 (the official
``classMapping40.mat``, whose ``className`` spelling, ``refridgerator`` included, is kept).
Standard split: 795 training / 654 test frames.

Reads the layout written by ``tools/create_data.py nyudv2``
(:mod:`mmfusion.converters.nyudv2`)::

    data_root/rgb/<id>.png     8-bit RGB, 640x480
    data_root/depth/<id>.png   uint16, metres = value / 5000 (0 = no depth)
    data_root/masks/<id>.png   uint8, classes 0..39, 255 = ignore
    data_root/train.txt        rgb/<id>.png<TAB>masks/<id>.png<TAB>depth/<id>.png per line
    data_root/val.txt          same, the 654 test frames

Labels are already 0..39 with 255 ignored, so ``reduce_zero_label`` is False (the void label 0 of
the raw 894-class maps became 255 in the converter).
"""
import os.path as osp
from typing import List

import mmengine.fileio as fileio
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

__all__ = ['NYUDv2Dataset']

NYUDV2_CLASSES = (
    'wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table', 'door', 'window', 'bookshelf',
    'picture', 'counter', 'blinds', 'desk', 'shelves', 'curtain', 'dresser', 'pillow', 'mirror',
    'floor mat', 'clothes', 'ceiling', 'books', 'refridgerator', 'television', 'paper', 'towel',
    'shower curtain', 'box', 'whiteboard', 'person', 'night stand', 'toilet', 'sink', 'lamp',
    'bathtub', 'bag', 'otherstructure', 'otherfurniture', 'otherprop')


@DATASETS.register_module()
class NYUDv2Dataset(BaseSegDataset):
    """NYUDv2 RGB-D frames listed as ``rgb<TAB>mask<TAB>depth`` triplets in ``ann_file``.

    Args:
        ann_file (str): ``train.txt`` or ``val.txt``, relative to ``data_root`` or absolute.
            Paths inside it are relative to ``data_root``.
        reduce_zero_label (bool): Default False (labels are 0..39 already).
        **kwargs: Other :class:`mmseg.datasets.BaseSegDataset` arguments (``data_root``,
            ``pipeline``, ``test_mode``, ``indices``, ``lazy_init``, ``backend_args``, ...).

    Each data info holds ``img_path``, ``seg_map_path``, ``depth_path`` (absolute or
    ``data_root``-joined paths), ``label_map``, ``reduce_zero_label`` and ``seg_fields``.

    Raises:
        ValueError: From ``load_data_list``, if a non-blank line of ``ann_file`` does not have
            three tab-separated fields (the message names the file and line), or if the file
            lists no frame.
    """

    METAINFO = dict(classes=NYUDV2_CLASSES)

    def __init__(self, ann_file: str, reduce_zero_label: bool = False, **kwargs) -> None:
        super().__init__(ann_file=ann_file, reduce_zero_label=reduce_zero_label, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Parse ``ann_file`` into one data info per frame."""
        root = self.data_root or ''
        lines = fileio.get_text(self.ann_file, backend_args=self.backend_args).splitlines()
        data_list = []
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            fields = line.strip().split('\t')
            if len(fields) != 3 or not all(fields):
                raise ValueError(
                    f'{self.ann_file}, line {lineno}: expected '
                    f'"rgb/<id>.png<TAB>masks/<id>.png<TAB>depth/<id>.png", got {line!r}')
            rgb, mask, depth = (osp.join(root, f) for f in fields)
            data_list.append(dict(
                img_path=rgb,
                seg_map_path=mask,
                depth_path=depth,
                label_map=self.label_map,
                reduce_zero_label=self.reduce_zero_label,
                seg_fields=[]))
        if not data_list:
            raise ValueError(f'{self.ann_file} lists no frame')
        return data_list
