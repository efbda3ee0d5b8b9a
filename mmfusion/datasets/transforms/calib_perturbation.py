"""Test-time LiDAR-camera calibration error: a rigid error transform on the camera extrinsic.

Protocol (SSLFusion, Ding et al., arXiv 2504.05170, measures the sensitivity of
LiDAR + camera fusion to calibration): the LiDAR points, the ground truth and the camera
intrinsics stay exact, only the extrinsic the model is given is wrong. With a rigid error
``T_err = [[R, t], [0, 1]]`` acting in the camera frame::

    lidar2cam' = T_err @ lidar2cam                 (4, 4)
    lidar2img' = cam2img @ lidar2cam'              (4, 4)

Frames and units (mmdet3d 1.4 KITTI infos, ``Det3DDataset.parse_data_info``):

- LiDAR frame: x forward, y left, z up, metres.
- Camera frame: the *rectified* reference camera of KITTI (x right, y down, z forward, metres):
  the infos' ``lidar2cam`` is ``R0_rect @ Tr_velo_to_cam`` and ``cam2img`` is the (4, 4)
  ``P2`` (intrinsics plus the camera-2 baseline offset in its last column), so
  ``lidar2img = P2 @ R0_rect @ Tr_velo_to_cam``.
- ``cam2img``: pixels of the original image; ``lidar2img @ [x, y, z, 1]`` gives
  ``(u * w, v * w, w, 1)``, ``w`` the depth (metres) plus ``P2[2, 3]``.

The error: ``R = R_y(yaw) @ R_x(pitch) @ R_z(roll)`` (right-hand rotations about the camera
axes: yaw about the vertical y axis, pitch about the horizontal x axis, roll about the optical z
axis; a positive yaw turns a point on the optical axis to the right, +u), ``t = (x, y, z) / 100``
metres. Two modes per component:

- fixed: ``rotation_deg=(roll, pitch, yaw)`` degrees, ``translation_cm=(x, y, z)`` cm;
- random direction, fixed magnitude: ``rotation_deg=angle`` (a rotation by ``angle`` degrees
  about an axis drawn uniformly on the unit sphere) and ``translation_cm=length`` (a shift of
  ``length`` cm in a direction drawn uniformly on the sphere). The draw is seeded by
  ``(seed, crc32(basename of lidar_path))`` (``sample_idx`` if there is no ``lidar_path``), so
  a frame gets the same error in every run, split or data order.

Keys updated (everything mmdet3d 1.4 and mmfusion models read; ``Pack3DDetInputs`` copies the
top-level ``lidar2img``, ``lidar2cam``, ``cam2img`` into the metainfo, which is what MVX-Net's
``PointFusion`` and SSLFusion's SAM (:meth:`mmfusion.models.fusion.SpaceAlignment.lidar2img`)
consume): the top-level ``lidar2cam`` and ``lidar2img`` (arrays, or lists of them for
multi-view loaders), and ``lidar2cam`` / ``lidar2img`` of every camera in
``results['images']`` (the same ``T_err`` in each camera's own frame; a camera that has a
``lidar2img`` but no ``lidar2cam``, as KITTI's CAM0/1/3, gets ``lidar2cam = inv(cam2img) @
lidar2img`` first). ``cam2img``, points and annotations are not changed. ``T_err`` itself is
stored as ``results['calib_perturbation']`` ((4, 4) float64; add it to ``Pack3DDetInputs``'s
``meta_keys`` to see it in the metainfo).

Placement: in the test pipeline after the loading transforms and before any transform that
folds image augmentations into ``lidar2img`` (none of the stock KITTI pipelines does), i.e.
right after ``LoadImageFromFile`` and before ``MultiScaleFlipAug3D`` / ``Pack3DDetInputs``
(``tools/analysis_tools/eval_calib_robustness.py`` puts it there).
"""
import os.path as osp
import zlib
from typing import Optional, Sequence, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS
from scipy.spatial.transform import Rotation

__all__ = ['PerturbCalibration', 'calib_error_matrix']

Number = Union[int, float]


def calib_error_matrix(rotation_deg: Sequence[Number] = (0., 0., 0.),
                       translation_cm: Sequence[Number] = (0., 0., 0.)) -> np.ndarray:
    """``T_err`` for fixed per-axis values (camera frame, see the module doc).

    Args:
        rotation_deg: (roll, pitch, yaw) degrees about the camera z, x, y axes;
            ``R = R_y(yaw) @ R_x(pitch) @ R_z(roll)``.
        translation_cm: (x, y, z) centimetres along the camera axes.

    Returns:
        np.ndarray: (4, 4) float64 rigid transform ``[[R, t / 100], [0, 1]]``.

    Raises:
        ValueError: If a value is not a sequence of 3 finite numbers.
    """
    roll, pitch, yaw = _three(rotation_deg, 'rotation_deg')
    mat = np.eye(4)
    # intrinsic y-x-z Euler angles: R = R_y(yaw) @ R_x(pitch) @ R_z(roll)
    mat[:3, :3] = Rotation.from_euler('YXZ', [yaw, pitch, roll], degrees=True).as_matrix()
    mat[:3, 3] = np.asarray(_three(translation_cm, 'translation_cm')) / 100.
    return mat


def _three(value, name: str) -> tuple:
    try:
        values = tuple(float(v) for v in value)
    except TypeError:
        raise ValueError(f'PerturbCalibration: {name} must be a number or 3 numbers, '
                         f'got {value!r}') from None
    if len(values) != 3 or not np.all(np.isfinite(values)):
        raise ValueError(f'PerturbCalibration: {name} must hold 3 finite numbers, got {value!r}')
    return values


def _as_4x4(mat, name: str) -> np.ndarray:
    mat = np.asarray(mat, dtype=np.float64)
    if mat.shape in ((3, 3), (3, 4)):
        full = np.eye(4)
        full[:mat.shape[0], :mat.shape[1]] = mat
        return full
    if mat.shape != (4, 4):
        raise ValueError(f'PerturbCalibration: {name} must be (3, 3), (3, 4) or (4, 4), '
                         f'got shape {mat.shape}')
    return mat


def _like(new: np.ndarray, old) -> np.ndarray:
    """``new`` in the shape rows and dtype of ``old`` (a (3, 4) stays (3, 4))."""
    old = np.asarray(old)
    dtype = old.dtype if np.issubdtype(old.dtype, np.floating) else np.float64
    return new[:old.shape[0], :old.shape[1]].astype(dtype)


@TRANSFORMS.register_module()
class PerturbCalibration(BaseTransform):
    """Apply a rigid extrinsic error ``T_err`` (camera frame) to ``lidar2cam`` / ``lidar2img``.

    Required keys: ``lidar2cam`` and ``cam2img`` (top level, as ``Det3DDataset`` with
    ``use_camera=True`` sets them), ``lidar_path`` or ``sample_idx`` (random modes only).
    Modified keys: ``lidar2cam``, ``lidar2img``, ``images[cam]['lidar2cam' / 'lidar2img']``.
    Added key: ``calib_perturbation`` ((4, 4) float64 ``T_err``).

    Args:
        rotation_deg (float | Sequence[float]): 3 values (roll, pitch, yaw) in degrees (fixed),
            or one angle in degrees about a random axis drawn per frame. Default 0.
        translation_cm (float | Sequence[float]): 3 values (x, y, z) in cm along the camera
            axes (fixed), or one length in cm in a random direction drawn per frame. Default 0.
        seed (int): seed of the random axes / directions (combined with the frame). Default 0.

    Raises:
        ValueError: On construction, for a malformed or negative value; when called, for a
            calibration matrix of another shape than (3, 3), (3, 4) or (4, 4).
        KeyError: When called on results without ``lidar2cam`` / ``cam2img``, or (random
            modes) without ``lidar_path`` and ``sample_idx``.
    """

    def __init__(self,
                 rotation_deg: Union[Number, Sequence[Number]] = 0.,
                 translation_cm: Union[Number, Sequence[Number]] = 0.,
                 seed: int = 0) -> None:
        self.random_rotation = np.isscalar(rotation_deg)
        self.random_translation = np.isscalar(translation_cm)
        for name, value, is_random in (('rotation_deg', rotation_deg, self.random_rotation),
                                       ('translation_cm', translation_cm,
                                        self.random_translation)):
            if is_random and not (np.isfinite(value) and value >= 0):
                raise ValueError(f'PerturbCalibration: a random-direction {name} is a magnitude '
                                 f'>= 0, got {value!r} (give 3 values for a signed fixed error)')
        # a zero magnitude has no direction to draw: it is the fixed error (0, 0, 0)
        self.random_rotation = self.random_rotation and rotation_deg != 0
        self.random_translation = self.random_translation and translation_cm != 0
        self.rotation_deg = float(rotation_deg) if self.random_rotation else _three(
            (0, 0, 0) if np.isscalar(rotation_deg) else rotation_deg, 'rotation_deg')
        self.translation_cm = float(translation_cm) if self.random_translation else _three(
            (0, 0, 0) if np.isscalar(translation_cm) else translation_cm, 'translation_cm')
        self.seed = int(seed)

    @property
    def is_identity(self) -> bool:
        """True if every drawn ``T_err`` is the identity (zero rotation and translation)."""
        return not np.any(self.rotation_deg) and not np.any(self.translation_cm)

    def _rng(self, results: dict) -> np.random.Generator:
        if results.get('lidar_path'):
            key = zlib.crc32(osp.basename(str(results['lidar_path'])).encode())
        elif results.get('sample_idx') is not None:
            key = int(results['sample_idx'])
        else:
            raise KeyError('PerturbCalibration: a random axis / direction is seeded by the frame, '
                           'but the results have neither lidar_path nor sample_idx')
        return np.random.default_rng([self.seed, key])

    def error_matrix(self, results: Optional[dict] = None) -> np.ndarray:
        """``T_err`` for one frame ((4, 4) float64; ``results`` seeds the random modes)."""
        if not (self.random_rotation or self.random_translation):
            return calib_error_matrix(self.rotation_deg, self.translation_cm)
        rng = self._rng(results or {})
        mat = np.eye(4)
        # both draws always happen, so the rotation axis does not depend on the translation mode
        axis, direction = (v / np.linalg.norm(v) for v in rng.standard_normal((2, 3)))
        if self.random_rotation:
            mat[:3, :3] = Rotation.from_rotvec(np.deg2rad(self.rotation_deg) * axis).as_matrix()
        else:
            mat[:3, :3] = calib_error_matrix(self.rotation_deg)[:3, :3]
        mat[:3, 3] = (self.translation_cm * direction if self.random_translation else
                      np.asarray(self.translation_cm)) / 100.
        return mat

    def _perturb(self, t_err: np.ndarray, lidar2cam, cam2img, lidar2img, name: str):
        """New (lidar2cam', lidar2img') for one camera; either input may be None."""
        cam2img4 = _as_4x4(cam2img, f'{name} cam2img')
        if lidar2cam is None:
            lidar2cam4 = np.linalg.inv(cam2img4) @ _as_4x4(lidar2img, f'{name} lidar2img')
        else:
            lidar2cam4 = _as_4x4(lidar2cam, f'{name} lidar2cam')
        new_lidar2cam = t_err @ lidar2cam4
        new_lidar2img = cam2img4 @ new_lidar2cam
        return (None if lidar2cam is None else _like(new_lidar2cam, lidar2cam),
                _like(new_lidar2img, new_lidar2img if lidar2img is None else lidar2img))

    def transform(self, results: dict) -> dict:
        """Perturb the calibration of one frame (see the class doc for keys and errors)."""
        for key in ('lidar2cam', 'cam2img'):
            if key not in results:
                raise KeyError(f'PerturbCalibration: results have no {key!r} (use a dataset with '
                               "modality use_camera=True, and put the transform after loading)")
        t_err = self.error_matrix(results)
        results['calib_perturbation'] = t_err
        multi_view = isinstance(results['lidar2cam'], (list, tuple))
        lidar2img = results.get('lidar2img')
        views = list(zip(results['lidar2cam'], results['cam2img'],
                         lidar2img or [None] * len(results['lidar2cam']))) if multi_view else [
            (results['lidar2cam'], results['cam2img'], lidar2img)]
        new_cam, new_img = [], []
        for i, (lidar2cam, cam2img, old_img) in enumerate(views):
            # lidar2img is recomputed from lidar2cam (old_img only gives its shape and dtype)
            cam, img = self._perturb(t_err, lidar2cam, cam2img, old_img, f'view {i}')
            new_cam.append(cam)
            new_img.append(img)
        results['lidar2cam'] = new_cam if multi_view else new_cam[0]
        results['lidar2img'] = new_img if multi_view else new_img[0]
        for cam_type, cam in (results.get('images') or {}).items():
            if not isinstance(cam, dict) or 'cam2img' not in cam or not (
                    'lidar2cam' in cam or 'lidar2img' in cam):  # e.g. KITTI's 'R0_rect' entry
                continue
            cam_lidar2cam, cam_lidar2img = self._perturb(
                t_err, cam.get('lidar2cam'), cam['cam2img'], cam.get('lidar2img'),
                f"images['{cam_type}']")
            if cam_lidar2cam is not None:
                cam['lidar2cam'] = cam_lidar2cam.tolist() if isinstance(
                    cam['lidar2cam'], list) else cam_lidar2cam
            if 'lidar2img' in cam:
                cam['lidar2img'] = cam_lidar2img.tolist() if isinstance(
                    cam['lidar2img'], list) else cam_lidar2img
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(rotation_deg={self.rotation_deg}, '
                f'translation_cm={self.translation_cm}, seed={self.seed})')
