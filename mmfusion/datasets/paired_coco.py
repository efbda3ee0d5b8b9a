"""COCO-style detection dataset whose images come in registered visible/infrared pairs.

Used by the RGB + infrared detectors (Fusion-Mamba, Dong et al., arXiv 2404.09146; DAMF) on
LLVIP, M3FD, FLIR-aligned and DroneVehicle. The annotation file is ordinary COCO detection json
(read by mmdet's :class:`~mmdet.datasets.CocoDataset`) whose ``images`` entries carry one extra
key, ``infrared_file_name``, the infrared partner of ``file_name``; one set of boxes serves both
modalities (the pairs are registered pixel to pixel). :func:`mmfusion.converters.llvip.
create_llvip_infos` writes such files, with both names relative to the LLVIP root.
"""
import os.path as osp
from typing import List, Union

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

__all__ = ['PairedCocoDataset']


@DATASETS.register_module()
class PairedCocoDataset(CocoDataset):
    """:class:`~mmdet.datasets.CocoDataset` that also keeps each image's infrared partner.

    Every data info gets ``img_ir_path = join(data_prefix['img_ir'], infrared_file_name)``
    beside the stock ``img_path = join(data_prefix['img'], file_name)``; everything else
    (instances, filtering, ``metainfo``, lazy init, serialisation) is the stock behaviour.
    Load the pair with :class:`~mmfusion.datasets.transforms.LoadPairedImageFromFile`.

    Args:
        data_prefix (dict): Folders that ``file_name`` (key ``'img'``) and
            ``infrared_file_name`` (key ``'img_ir'``) are relative to; relative folders are
            joined with ``data_root`` as usual. Both keys are required. Defaults to
            ``dict(img='', img_ir='')`` (both names relative to ``data_root``, the layout
            the LLVIP converter writes).
        **kwargs: Passed to :class:`~mmdet.datasets.CocoDataset` (``ann_file``,
            ``data_root``, ``metainfo``, ``pipeline``, ``filter_cfg``, ``test_mode``, ...).
            For LLVIP pass ``metainfo=dict(classes=('person', ))``.

    Raises:
        ValueError: If ``data_prefix`` lacks ``'img'`` or ``'img_ir'``.
        KeyError: When the annotations are loaded, if an ``images`` entry has no
            ``infrared_file_name`` (the message names the image and the annotation file).
    """

    def __init__(self, *args, data_prefix: dict = dict(img='', img_ir=''), **kwargs) -> None:
        missing = [key for key in ('img', 'img_ir') if key not in data_prefix]
        if missing:
            raise ValueError(
                f'{self.__class__.__name__}: data_prefix must give the folders of both '
                f'modalities, keys "img" (visible) and "img_ir" (infrared); missing '
                f'{missing} in {data_prefix}')
        super().__init__(*args, data_prefix=data_prefix, **kwargs)

    def parse_data_info(self, raw_data_info: dict) -> Union[dict, List[dict]]:
        """Parse one image's raw COCO info into a data info with both image paths.

        Args:
            raw_data_info (dict): ``dict(raw_img_info=..., raw_ann_info=...)`` as built by
                :meth:`CocoDataset.load_data_list`.

        Returns:
            dict: The stock data info (``img_path``, ``img_id``, ``height``, ``width``,
            ``instances``, ...) plus ``img_ir_path`` (str).

        Raises:
            KeyError: If the image entry has no ``infrared_file_name``.
        """
        data_info = super().parse_data_info(raw_data_info)
        img_info = raw_data_info['raw_img_info']
        if 'infrared_file_name' not in img_info:
            raise KeyError(
                f'{self.ann_file}: image {img_info.get("file_name")!r} '
                f'(id {img_info.get("img_id")}) has no "infrared_file_name"; '
                f'{self.__class__.__name__} needs paired visible/infrared entries')
        data_info['img_ir_path'] = osp.join(self.data_prefix['img_ir'],
                                            img_info['infrared_file_name'])
        return data_info
