"""Load a depth map aligned with the RGB image, and encode it as a 3-channel image.

Used by GeminiFusion RGB + depth segmentation (Jia et al., ICML 2024, arXiv 2406.01210), whose
backbone is *shared* by the two modalities, so depth enters it through the same 3-channel patch
embedding as RGB.

Shape shorthand: H, W image height and width in pixels. Depth is in metres throughout; 0 means
"no depth" (a hole of the sensor).

Depth encoding (:class:`EncodeDepth`): the depth in metres replicated into 3 channels, as the
official code does with its single-channel depth image (``np.tile`` of the grey image to 3
channels in ``utils/datasets.py``); the official code scales its 8-bit depth image to [0, 1] and
does not standardise it, which the configs reproduce with the data preprocessor's
``depth_mean=0``, ``depth_std=10`` m (NYUDv2 depth lies in 0..10 m). HHA is not provided.
"""
from typing import Optional

import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

__all__ = ['LoadDepthFromFile', 'EncodeDepth']


@TRANSFORMS.register_module()
class LoadDepthFromFile(BaseTransform):
    """Read a 16-bit depth PNG into metres.

    Required keys: ``depth_path`` (as set by :class:`~mmfusion.datasets.NYUDv2Dataset`);
    ``img`` optional (if present, its (H, W) must match the depth map's).
    Added keys: ``img_depth`` (np.ndarray, (H, W) float32, metres = stored value /
    ``depth_scale``).

    Args:
        depth_scale (float): Stored units per metre. Default 5000 (the NYUDv2 converter's).
        backend_args (dict, optional): File backend arguments (``mmengine.fileio``).

    Raises:
        KeyError: If ``depth_path`` is missing.
        FileNotFoundError: If the depth file does not exist (names it and its RGB image).
        ValueError: If the file is not a single-channel 16-bit image, or its (H, W) differs
            from the loaded RGB image's (names both files).
        OSError: If the file cannot be decoded.
    """

    def __init__(self, depth_scale: float = 5000.0,
                 backend_args: Optional[dict] = None) -> None:
        if depth_scale <= 0:
            raise ValueError(f'depth_scale must be positive, got {depth_scale}')
        self.depth_scale = depth_scale
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        if 'depth_path' not in results:
            raise KeyError(f'{self.__class__.__name__}: no "depth_path" for '
                           f'{results.get("img_path")} (build the dataset with NYUDv2Dataset)')
        path = results['depth_path']
        img_path = results.get('img_path')
        try:
            data = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError:
            raise FileNotFoundError(
                f'depth file {path} not found (RGB image {img_path})') from None
        depth = mmcv.imfrombytes(data, flag='unchanged', backend='cv2')
        if depth is None:
            raise OSError(f'cannot decode depth file {path}')
        if depth.ndim != 2 or depth.dtype != np.uint16:
            raise ValueError(
                f'depth file {path} must be a single-channel 16-bit PNG (metres x '
                f'{self.depth_scale:g}), got dtype {depth.dtype} and shape {depth.shape}; '
                'convert the dataset with tools/create_data.py nyudv2')
        img = results.get('img')
        if img is not None and img.shape[:2] != depth.shape:
            raise ValueError(
                f'depth file {path} is {depth.shape[1]}x{depth.shape[0]} (WxH) but RGB image '
                f'{img_path} is {img.shape[1]}x{img.shape[0]}; they must be pixel-aligned')
        results['img_depth'] = depth.astype(np.float32) / np.float32(self.depth_scale)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(depth_scale={self.depth_scale}, '
                f'backend_args={self.backend_args})')


@TRANSFORMS.register_module()
class EncodeDepth(BaseTransform):
    """Encode the depth map as a 3-channel image for a backbone shared with RGB.

    Required keys: ``img_depth`` ((H, W) float metres).
    Modified keys: ``img_depth`` -> (H, W, 3) float32, the (optionally clipped) metres in every
    channel. Normalisation happens in the data preprocessor (``depth_mean``, ``depth_std``).

    Args:
        max_depth (float, optional): Clip depth to [0, max_depth] metres. None: no clipping.

    Raises:
        ValueError: If ``img_depth`` is not (H, W) (e.g. already encoded).
    """

    def __init__(self, max_depth: Optional[float] = None) -> None:
        self.max_depth = max_depth

    def transform(self, results: dict) -> dict:
        depth = results['img_depth']
        if depth.ndim != 2:
            raise ValueError(f'{self.__class__.__name__} expects img_depth of shape (H, W) in '
                             f'metres, got {depth.shape} ({results.get("depth_path")})')
        depth = depth.astype(np.float32, copy=False)
        if self.max_depth is not None:
            depth = np.clip(depth, 0, self.max_depth)
        results['img_depth'] = np.repeat(depth[..., None], 3, axis=2)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(max_depth={self.max_depth})'
