"""Load a registered visible/infrared image pair (RGB + infrared detection: Fusion-Mamba, DAMF).

Shape shorthand: H, W are the image height and width in pixels, C the channel count (3 for
``color_type='color'``, none for ``'grayscale'``). Both images of a pair must have the same
H and W: every paired geometric transform of :mod:`.paired_transforms` relies on it.
"""
from typing import Optional

import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmdet.registry import TRANSFORMS

__all__ = ['LoadPairedImageFromFile']


@TRANSFORMS.register_module()
class LoadPairedImageFromFile(LoadImageFromFile):
    """Load the visible image from ``img_path`` and its infrared partner from ``img_ir_path``.

    mmcv's :class:`~mmcv.transforms.LoadImageFromFile` for two files, with errors that name
    both files of the pair. ``img_shape`` and ``ori_shape`` describe both images (they are
    checked to be equal).

    Required keys: ``img_path``, ``img_ir_path`` (as set by
    :class:`~mmfusion.datasets.PairedCocoDataset`).
    Added keys: ``img`` (np.ndarray, (H, W, C), visible, BGR for ``color_type='color'``),
    ``img_ir`` (np.ndarray, (H, W, C), infrared), ``img_shape``, ``ori_shape`` ((H, W)).

    Args:
        to_float32 (bool): Convert both images to float32 (else uint8). Defaults to False.
        color_type (str): ``mmcv.imfrombytes`` flag of the visible image. Defaults to
            ``'color'``.
        ir_color_type (str, optional): Flag of the infrared image; ``None`` takes
            ``color_type``. LLVIP and FLIR store infrared frames as 3-channel JPEG, so
            ``'color'`` gives (H, W, 3) with three equal channels. Defaults to None.
        imdecode_backend (str): Decoding backend. Defaults to ``'cv2'``.
        ignore_empty (bool): Return ``None`` (drop the sample) instead of raising when
            either file is missing or unreadable. Defaults to False.
        backend_args (dict, optional): File backend arguments (``mmengine.fileio``).

    Raises:
        FileNotFoundError: (from ``transform``, unless ``ignore_empty``) if either file is
            missing; the message names the missing file and its partner.
        OSError: (unless ``ignore_empty``) if either file cannot be decoded.
        ValueError: If the two images differ in height or width (never ignored).
    """

    def __init__(self, *args, ir_color_type: Optional[str] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ir_color_type = self.color_type if ir_color_type is None else ir_color_type

    def _load(self, filename: str, flag: str, pair: str) -> Optional[np.ndarray]:
        """Read and decode one file; ``pair`` names both files for error messages.

        Returns:
            np.ndarray | None: The image, or ``None`` if it fails and ``ignore_empty``.
        """
        try:
            if self.file_client_args is not None:
                client = fileio.FileClient.infer_client(self.file_client_args, filename)
                img_bytes = client.get(filename)
            else:
                img_bytes = fileio.get(filename, backend_args=self.backend_args)
        except FileNotFoundError:
            if self.ignore_empty:
                return None
            raise FileNotFoundError(f'image file {filename} not found ({pair})') from None
        img = mmcv.imfrombytes(img_bytes, flag=flag, backend=self.imdecode_backend)
        if img is None:
            if self.ignore_empty:
                return None
            raise OSError(f'cannot decode image file {filename} ({pair})')
        return img.astype(np.float32) if self.to_float32 else img

    def transform(self, results: dict) -> Optional[dict]:
        """Load both images of the pair.

        Args:
            results (dict): A data info with ``img_path`` and ``img_ir_path``.

        Returns:
            dict | None: ``results`` with ``img``, ``img_ir``, ``img_shape``,
            ``ori_shape``; ``None`` if a file fails and ``ignore_empty`` is set.

        Raises:
            KeyError: If ``results`` has no ``img_ir_path``.
            FileNotFoundError, OSError, ValueError: See the class docstring.
        """
        vis_path = results['img_path']
        if 'img_ir_path' not in results:
            raise KeyError(
                f'{self.__class__.__name__}: no "img_ir_path" for {vis_path}; build the '
                'dataset with PairedCocoDataset (or set img_ir_path in the data info)')
        ir_path = results['img_ir_path']
        pair = f'pair: visible {vis_path}, infrared {ir_path}'
        img = self._load(vis_path, self.color_type, pair)
        img_ir = self._load(ir_path, self.ir_color_type, pair)
        if img is None or img_ir is None:
            return None
        if img.shape[:2] != img_ir.shape[:2]:
            raise ValueError(
                f'visible image {vis_path} is {img.shape[1]}x{img.shape[0]} (WxH) but '
                f'infrared image {ir_path} is {img_ir.shape[1]}x{img_ir.shape[0]}; '
                'paired images must be registered at the same size')
        results['img'] = img
        results['img_ir'] = img_ir
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(to_float32={self.to_float32}, '
                f"color_type='{self.color_type}', ir_color_type='{self.ir_color_type}', "
                f"imdecode_backend='{self.imdecode_backend}', "
                f'ignore_empty={self.ignore_empty}, backend_args={self.backend_args})')
