"""Synthetic RGB degradations for RGB + infrared robustness protocols (DAMF and others).

Paper protocol: "Distribution-Aligned Multimodal Fusion for Robust Object Detection" (DAMF),
CVPR 2026, trains the fusion on RGB images with one degradation and tests on seen and unseen
degradations (over-/under-exposure, night, and others). The paper's exact synthesis is not
released; the models below are stated here (for the README) and are shared by every RGB-IR
method of mmfusion. They touch ``results['img']`` (the visible image) only, never
``results['img_ir']`` (the infrared camera does not see visible-light degradations).

Conventions: images are uint8 (H, W, 3) (any channel order: every model below treats the
three channels alike) or (H, W); the models work on ``x = img / 255`` in [0, 1] (gamma-encoded
values) and write back ``round(255 * clip(y, 0, 1))``. ``severity`` is a number in [0, 5]:
integers 1..5 are the tabulated levels, 0 is the identity, and a fractional severity
interpolates every parameter linearly between the neighbouring levels. Sizes in pixels are
given for a 224-pixel short side (ImageNet-C's image size) and scaled by ``min(H, W) / 224``,
so a level blurs the same fraction of the image before or after a resize.

================  =============================================================================
kind              model and parameters per severity 1, 2, 3, 4, 5
================  =============================================================================
overexposure      exposure raised by ``ev`` stops in linear light: ``y = srgb(min(1,
                  2**ev * lin(x)))`` with the IEC 61966-2-1 sRGB curve ``srgb``/``lin``;
                  ``ev`` = 1, 2, 3, 4, 5 (one stop per level; highlights saturate, as a
                  sensor does).
underexposure     exposure lowered by ``ev`` stops: ``y = srgb(2**-ev * lin(x))``;
                  ``ev`` = 1, 2, 3, 4, 5 (no noise: that is ``night``).
night             low light + gamma + sensor noise, the low-light synthesis of Lv et al.
                  (MBLLEN, BMVC 2018): ``s = k * x**gamma`` (darkening, the gamma crushes
                  shadows more than lights), then heteroscedastic Gaussian sensor noise
                  ``y = s + n``, ``n ~ N(0, shot * s + read**2)`` (the Poisson-Gaussian model
                  of Brooks et al., "Unprocessing Images for Learned Raw Denoising", CVPR 2019,
                  in its Gaussian form), independent per pixel and channel;
                  ``k`` = 0.80, 0.65, 0.50, 0.40, 0.30; ``gamma`` = 1.2, 1.4, 1.6, 1.8, 2.0;
                  ``shot`` = 0.002, 0.004, 0.008, 0.016, 0.030; ``read`` = 0.005, 0.008,
                  0.012, 0.018, 0.025.
blur              Gaussian blur, ImageNet-C ``gaussian_blur`` (Hendrycks & Dietterich, ICLR
                  2019): ``sigma`` = 1, 2, 3, 4, 6 pixels at 224 px.
defocus_blur      ImageNet-C ``defocus_blur``: disk kernel of ``radius`` = 3, 4, 6, 8, 10
                  pixels at 224 px, the kernel smoothed by a Gaussian of ``alias`` = 0.1,
                  0.5, 0.5, 0.5, 0.5 pixels (at 224 px).
fog               atmospheric scattering model ``y = x * t + A * (1 - t)``,
                  ``t = exp(-beta * d)`` (Koschmieder; applied to the gamma-encoded image as
                  in Foggy Cityscapes, Sakaridis et al., IJCV 2018), with a depth proxy
                  ``d`` from the row: ``d = 0.2`` at the bottom row to ``1`` at the top (ground
                  cameras and surveillance views see farther up the image), airlight
                  ``A = 0.8``; ``beta`` = 0.5, 1.0, 1.5, 2.0, 3.0.
================  =============================================================================

Measured effect on the 8 well-exposed bundled images (6 KITTI, 2 NYUDv2 frames; brightness
0.33-0.49, contrast 0.55-0.70 as defined in :mod:`mmfusion.datasets.normal_sample_selection`),
brightness / contrast ranges over the images at levels 1, 3, 5:

=============  ===========================  ===========================  ===========================
kind           level 1                      level 3                      level 5
=============  ===========================  ===========================  ===========================
overexposure   0.42-0.64 / 0.61-0.69        0.61-0.82 / 0.55-0.67        0.81-0.92 / 0.34-0.51
underexposure  0.24-0.35 / 0.41-0.53        0.11-0.18 / 0.22-0.29        0.05-0.08 / 0.11-0.15
night          0.23-0.35 / 0.45-0.58        0.12-0.19 / 0.27-0.38        0.07-0.10 / 0.16-0.24
fog            0.45-0.57 / 0.40-0.51        0.60-0.67 / 0.23-0.34        0.70-0.74 / 0.13-0.22
=============  ===========================  ===========================  ===========================

Only ``night`` draws random numbers. ImageNet-C's own ``fog`` (plasma fractal) and
``brightness`` (additive HSV shift) are not used: fog is modelled as atmospheric scattering,
and an exposure change in linear light is what over-exposure is physically.

Determinism: with ``seed`` set, the random generator of a sample is
``numpy.random.default_rng([seed, crc32(basename(img_path))])`` (``sample_idx`` when there is
no ``img_path``): a given image gets the same noise in every run and on every machine, while
different images get different noise. With ``seed=None`` the generator is seeded from numpy's
global generator, which mmengine seeds (``randomness=dict(seed=...)``), so training runs repeat
too.
"""
import os.path as osp
import zlib
from typing import Callable, Dict, Optional, Sequence, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS

__all__ = [
    'DEGRADATION_KINDS', 'SEVERITY_PARAMETERS', 'degrade', 'degradation_parameters',
    'RGBDegradation', 'RandomRGBDegradation'
]

# level 0 (the identity) followed by levels 1..5; see the module docstring
SEVERITY_PARAMETERS: Dict[str, Dict[str, tuple]] = {
    'overexposure': dict(ev=(0.0, 1.0, 2.0, 3.0, 4.0, 5.0)),
    'underexposure': dict(ev=(0.0, 1.0, 2.0, 3.0, 4.0, 5.0)),
    'night': dict(k=(1.0, 0.80, 0.65, 0.50, 0.40, 0.30),
                  gamma=(1.0, 1.2, 1.4, 1.6, 1.8, 2.0),
                  shot=(0.0, 0.002, 0.004, 0.008, 0.016, 0.030),
                  read=(0.0, 0.005, 0.008, 0.012, 0.018, 0.025)),
    'blur': dict(sigma=(0.0, 1.0, 2.0, 3.0, 4.0, 6.0)),
    'defocus_blur': dict(radius=(0.0, 3.0, 4.0, 6.0, 8.0, 10.0),
                         alias=(0.0, 0.1, 0.5, 0.5, 0.5, 0.5)),
    'fog': dict(beta=(0.0, 0.5, 1.0, 1.5, 2.0, 3.0)),
}
DEGRADATION_KINDS = tuple(SEVERITY_PARAMETERS)
MAX_SEVERITY = 5
REFERENCE_SIZE = 224  # ImageNet-C image size: pixel parameters are given at this short side
FOG_AIRLIGHT = 0.8
FOG_NEAR_DEPTH = 0.2


def degradation_parameters(kind: str, severity: Union[int, float]) -> Dict[str, float]:
    """The parameters of ``kind`` at ``severity`` (linear between tabulated levels).

    Raises:
        ValueError: If ``kind`` is unknown or ``severity`` is outside [0, 5].
    """
    if kind not in SEVERITY_PARAMETERS:
        raise ValueError(f'unknown degradation kind {kind!r}; choose from {DEGRADATION_KINDS}')
    if not 0 <= float(severity) <= MAX_SEVERITY:
        raise ValueError(f'severity must be in [0, {MAX_SEVERITY}], got {severity}')
    levels = np.arange(MAX_SEVERITY + 1)
    return {name: float(np.interp(float(severity), levels, values))
            for name, values in SEVERITY_PARAMETERS[kind].items()}


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB decoding, [0, 1] -> [0, 1]."""
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055)**2.4)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB encoding, [0, 1] -> [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x**(1 / 2.4) - 0.055)


def _exposure_lut(ev: float) -> np.ndarray:
    """256-entry uint8 table of an exposure change of ``ev`` stops in linear light."""
    x = np.arange(256, dtype=np.float64) / 255.0
    y = _linear_to_srgb(_srgb_to_linear(x) * 2.0**ev)
    return np.clip(np.round(y * 255.0), 0, 255).astype(np.uint8)


def _to_uint8(y: np.ndarray) -> np.ndarray:
    return np.clip(np.round(y * 255.0), 0, 255).astype(np.uint8)


def _scale(img: np.ndarray) -> float:
    return min(img.shape[:2]) / REFERENCE_SIZE


def _overexposure(img, p, rng):
    return _exposure_lut(p['ev'])[img]


def _underexposure(img, p, rng):
    return _exposure_lut(-p['ev'])[img]


def _night(img, p, rng):
    s = p['k'] * (img.astype(np.float32) / 255.0)**p['gamma']
    std = np.sqrt(p['shot'] * s + p['read']**2)
    return _to_uint8(s + std * rng.standard_normal(s.shape, dtype=np.float32))


def _gaussian_blur(img, p, rng):
    sigma = p['sigma'] * _scale(img)
    if sigma <= 0:
        return img.copy()
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REFLECT_101)


def _defocus_blur(img, p, rng):
    scale = _scale(img)
    radius, alias = p['radius'] * scale, p['alias'] * scale
    if radius <= 0:
        return img.copy()
    half = int(np.ceil(radius)) + 1
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    kernel = (xx**2 + yy**2 <= radius**2).astype(np.float32)
    if alias > 0:
        kernel = cv2.GaussianBlur(kernel, (0, 0), sigmaX=alias)
    kernel /= kernel.sum()
    out = cv2.filter2D(img.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _fog(img, p, rng):
    h = img.shape[0]
    rows = np.arange(h, dtype=np.float32) / max(h - 1, 1)  # 0 at the top, 1 at the bottom
    depth = FOG_NEAR_DEPTH + (1.0 - FOG_NEAR_DEPTH) * (1.0 - rows)
    t = np.exp(-p['beta'] * depth).reshape((h, 1) + (1, ) * (img.ndim - 2))
    return _to_uint8(img.astype(np.float32) / 255.0 * t + FOG_AIRLIGHT * (1.0 - t))


_MODELS: Dict[str, Callable] = {
    'overexposure': _overexposure,
    'underexposure': _underexposure,
    'night': _night,
    'blur': _gaussian_blur,
    'defocus_blur': _defocus_blur,
    'fog': _fog,
}


def degrade(img: np.ndarray, kind: str, severity: Union[int, float],
            rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Apply one degradation to one image (see the module docstring for the models).

    Args:
        img (np.ndarray): uint8 image, (H, W, C) or (H, W).
        kind (str): One of :data:`DEGRADATION_KINDS`.
        severity (int | float): In [0, 5]; 0 returns a copy.
        rng (np.random.Generator, optional): Source of the noise (``night`` only); a fresh
            unseeded generator when None.

    Returns:
        np.ndarray: uint8 image of the same shape.

    Raises:
        TypeError: If ``img`` is not uint8.
        ValueError: If ``kind`` or ``severity`` is invalid.
    """
    params = degradation_parameters(kind, severity)
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise TypeError(f'degradations take uint8 images, got '
                        f'{getattr(img, "dtype", type(img))}')
    if float(severity) == 0:
        return img.copy()
    return _MODELS[kind](img, params, rng if rng is not None else np.random.default_rng())


class _RGBDegradationBase(BaseTransform):
    """Shared part: per-sample random generator and the application to ``results['img']``.

    Args:
        seed (int, optional): See the module docstring (determinism).
    """

    def __init__(self, seed: Optional[int] = None) -> None:
        self.seed = seed

    def _rng(self, results: dict) -> np.random.Generator:
        """The sample's generator: seeded from ``seed`` and the image name, or from numpy."""
        if self.seed is None:
            return np.random.default_rng(np.random.randint(0, 2**31 - 1))
        if results.get('img_path') is not None:
            key = zlib.crc32(osp.basename(str(results['img_path'])).encode('utf-8'))
        elif results.get('sample_idx') is not None:
            key = int(results['sample_idx'])
        else:
            key = 0
        return np.random.default_rng([int(self.seed), key])

    def _apply(self, results: dict, kind: str, severity: Union[int, float],
               rng: np.random.Generator) -> dict:
        img = results.get('img')
        if img is None:
            raise KeyError(f'{self.__class__.__name__} needs results["img"] (load the image '
                           'first)')
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
            raise TypeError(
                f'{self.__class__.__name__}: results["img"] of {results.get("img_path")} is '
                f'{getattr(img, "dtype", type(img))}, expected uint8; place the degradation '
                'right after loading (to_float32=False), before any normalisation')
        results['img'] = degrade(img, kind, severity, rng)
        results['rgb_degradation'] = dict(kind=kind, severity=severity)
        return results


@TRANSFORMS.register_module()
class RGBDegradation(_RGBDegradationBase):
    """Apply one degradation kind at one severity to the visible image.

    Required keys: ``img`` (uint8). Optional: ``img_path`` / ``sample_idx`` (seeding).
    Modified keys: ``img`` (same shape and dtype). Added keys: ``rgb_degradation``
    (``dict(kind=..., severity=...)``). ``img_ir`` is never touched.

    Args:
        kind (str): One of ``overexposure``, ``underexposure``, ``night``, ``blur``,
            ``defocus_blur``, ``fog``.
        severity (int | float): 1..5 (levels of the module table); fractions interpolate;
            0 is the identity.
        seed (int, optional): Fixed noise per image (evaluation sets); None draws from
            numpy's global generator (training).

    Raises:
        ValueError: At construction, for an unknown ``kind`` or a severity outside [0, 5].
        KeyError, TypeError: From ``transform``, if ``img`` is missing or not uint8.
    """

    def __init__(self, kind: str, severity: Union[int, float],
                 seed: Optional[int] = None) -> None:
        super().__init__(seed)
        degradation_parameters(kind, severity)  # validates
        self.kind = kind
        self.severity = severity

    def transform(self, results: dict) -> dict:
        """Degrade ``results['img']``; see the class docstring."""
        return self._apply(results, self.kind, self.severity, self._rng(results))

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(kind={self.kind!r}, severity={self.severity}, '
                f'seed={self.seed})')


@TRANSFORMS.register_module()
class RandomRGBDegradation(_RGBDegradationBase):
    """With probability ``prob``, apply a kind and severity drawn uniformly from the lists.

    For training on a degradation (e.g. ``kinds=['overexposure']``) or on a mixture.
    Keys as :class:`RGBDegradation`; ``rgb_degradation`` is None for an untouched sample.

    Args:
        kinds (str | Sequence[str]): Kinds to draw from.
        severities (Sequence[int | float]): Severities to draw from. Defaults to 1..5.
        prob (float): Probability of degrading a sample. Defaults to 1.0.
        seed (int, optional): With a seed, the draw (and the noise) is fixed per image
            (a fixed mixed-degradation test set); None draws from numpy's global generator.

    Raises:
        ValueError: For an empty list, an unknown kind, a severity outside [0, 5] or
            ``prob`` outside [0, 1].
    """

    def __init__(self, kinds: Union[str, Sequence[str]],
                 severities: Sequence[Union[int, float]] = (1, 2, 3, 4, 5),
                 prob: float = 1.0, seed: Optional[int] = None) -> None:
        super().__init__(seed)
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        severities = list(severities)
        if not kinds or not severities:
            raise ValueError(f'kinds and severities must not be empty, got {kinds}, '
                             f'{severities}')
        for kind in kinds:
            for severity in severities:
                degradation_parameters(kind, severity)  # validates
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        self.kinds, self.severities, self.prob = kinds, severities, prob

    def transform(self, results: dict) -> dict:
        """Maybe degrade ``results['img']``; see the class docstring."""
        rng = self._rng(results)
        if rng.random() >= self.prob:
            results['rgb_degradation'] = None
            return results
        kind = self.kinds[rng.integers(len(self.kinds))]
        severity = self.severities[rng.integers(len(self.severities))]
        return self._apply(results, kind, severity, rng)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(kinds={self.kinds}, severities={self.severities}, '
                f'prob={self.prob}, seed={self.seed})')
