"""Select *normal* RGB images (well exposed, enough contrast) for DAMF's feature prior.

Paper: "Distribution-Aligned Multimodal Fusion for Robust Object Detection" (DAMF), CVPR 2026:
the Gaussian mixture ``P_normal`` is fitted on CLS features of normal samples, those with
brightness in [0.3, 0.7] and contrast above 0.4, computed on the raw RGB image scaled to
[0, 1]. The paper does not define the two statistics exactly; the definitions here (stated for
the README):

- **brightness** = mean luma ``Y' = 0.2126 R' + 0.7152 G' + 0.0722 B'`` (ITU-R BT.709
  coefficients applied to the gamma-encoded values, the usual "mean luminance" of image
  statistics), over all pixels, values in [0, 1];
- **contrast** = normalised RMS contrast ``2 * std(Y')``: the standard deviation of the luma
  divided by its largest possible value 0.5 (half the pixels 0, half 1), so it lies in [0, 1].

Measured on the bundled real samples (tests/data): daytime KITTI frames have brightness
0.33-0.41 and contrast 0.56-0.70, NYUDv2 indoor frames 0.47-0.49 and 0.55-0.60 (normal); the
LLVIP night frames 0.11-0.26 (too dark); the M3FD visible frame 00471 (haze) contrast 0.20
(too flat). Over- and under-exposure (:mod:`mmfusion.datasets.transforms.degradations`) push
brightness out of the range; fog and strong under-exposure push contrast below 0.4.

Stratification (choice): when fewer samples are wanted than pass, they are drawn so that every
brightness bin is represented: the brightness range is cut into ``num_bins`` equal-width bins
(default 4: [0.3, 0.4), [0.4, 0.5), [0.5, 0.6), [0.6, 0.7]); each bin gets an equal share of the
budget (a remainder goes to the bins with the most candidates); a bin with fewer candidates
than its share gives all of them and the rest is shared again among the bins with candidates
left (water-filling), so the budget is always used in full;
inside a bin the samples are drawn uniformly at random (``numpy.random.default_rng(seed)``).

Shape shorthand: H, W image height and width in pixels; N the number of images.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    'BRIGHTNESS_RANGE', 'MIN_CONTRAST', 'LUMA_COEFFICIENTS', 'image_statistics',
    'NormalSampleSelector'
]

BRIGHTNESS_RANGE = (0.3, 0.7)
MIN_CONTRAST = 0.4
LUMA_COEFFICIENTS = (0.2126, 0.7152, 0.0722)  # ITU-R BT.709, R', G', B'


def image_statistics(img: np.ndarray, channel_order: str = 'bgr') -> Tuple[float, float]:
    """Brightness and contrast of one image, as defined in the module docstring.

    Args:
        img (np.ndarray): (H, W, 3) colour image (uint8 in [0, 255], or float in [0, 255] as
            ``to_float32`` loading gives), or (H, W) grey image.
        channel_order (str): ``'bgr'`` (mmcv's loading order) or ``'rgb'``.

    Returns:
        tuple[float, float]: ``(brightness, contrast)``, both in [0, 1].

    Raises:
        ValueError: If the shape is not (H, W) or (H, W, 3), the image is empty, or
            ``channel_order`` is unknown.
    """
    if channel_order not in ('bgr', 'rgb'):
        raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
    if img.ndim == 3 and img.shape[2] == 3:
        coeffs = LUMA_COEFFICIENTS if channel_order == 'rgb' else LUMA_COEFFICIENTS[::-1]
        luma = img.astype(np.float64) @ np.asarray(coeffs)
    elif img.ndim == 2:
        luma = img.astype(np.float64)
    else:
        raise ValueError(f'expected an (H, W, 3) or (H, W) image, got shape {img.shape}')
    if luma.size == 0:
        raise ValueError('empty image')
    luma /= 255.0
    return float(luma.mean()), float(2.0 * luma.std())


class NormalSampleSelector:
    """Decide which images are normal and draw a brightness-stratified subset of them.

    Args:
        brightness_range (Sequence[float]): Inclusive ``(low, high)`` brightness of a
            normal image. Defaults to (0.3, 0.7) (paper).
        min_contrast (float): A normal image has contrast strictly above it. Defaults to 0.4
            (paper).
        num_bins (int): Equal-width brightness bins for stratification. Defaults to 4.

    Raises:
        ValueError: If the range is not ``0 <= low < high <= 1`` or ``num_bins < 1``.
    """

    def __init__(self, brightness_range: Sequence[float] = BRIGHTNESS_RANGE,
                 min_contrast: float = MIN_CONTRAST, num_bins: int = 4) -> None:
        low, high = (float(v) for v in brightness_range)
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f'brightness_range must satisfy 0 <= low < high <= 1, got '
                             f'{tuple(brightness_range)}')
        if num_bins < 1:
            raise ValueError(f'num_bins must be >= 1, got {num_bins}')
        self.brightness_range = (low, high)
        self.min_contrast = float(min_contrast)
        self.num_bins = int(num_bins)

    def is_normal(self, brightness: np.ndarray, contrast: np.ndarray) -> np.ndarray:
        """Boolean (N,) mask of the normal images."""
        brightness, contrast = np.asarray(brightness), np.asarray(contrast)
        low, high = self.brightness_range
        return (brightness >= low) & (brightness <= high) & (contrast > self.min_contrast)

    def bin_index(self, brightness: np.ndarray) -> np.ndarray:
        """(N,) brightness bin of each image, 0 .. num_bins - 1 (clipped at the ends)."""
        low, high = self.brightness_range
        idx = np.floor((np.asarray(brightness) - low) / (high - low) * self.num_bins)
        return np.clip(idx, 0, self.num_bins - 1).astype(np.int64)

    def select(self, brightness: Sequence[float], contrast: Sequence[float],
               num_samples: Optional[int] = None, seed: int = 0) -> Tuple[np.ndarray, Dict]:
        """Indices of the normal images to use, stratified by brightness bin.

        Args:
            brightness (Sequence[float]): (N,) brightness of every image.
            contrast (Sequence[float]): (N,) contrast of every image.
            num_samples (int, optional): How many to draw; ``None`` (or more than pass) takes
                every normal image.
            seed (int): Seed of the draw inside the bins.

        Returns:
            tuple: ``(indices, summary)``: sorted int64 indices into the N images, and a dict
            of plain Python values: ``num_images``, ``num_normal``, ``num_selected``,
            ``rejected`` (``too_dark``, ``too_bright``, ``low_contrast``: counts; an image
            failing two tests counts in both), the thresholds, the ``bins`` (edges, candidates
            and selected per bin), and the brightness/contrast mean, min and max of all and of
            the selected images.

        Raises:
            ValueError: If the two sequences differ in length or ``num_samples < 1``.
        """
        brightness = np.asarray(brightness, dtype=np.float64)
        contrast = np.asarray(contrast, dtype=np.float64)
        if brightness.shape != contrast.shape or brightness.ndim != 1:
            raise ValueError(f'brightness {brightness.shape} and contrast {contrast.shape} '
                             'must be 1-D of the same length')
        if num_samples is not None and num_samples < 1:
            raise ValueError(f'num_samples must be >= 1 or None, got {num_samples}')
        normal = self.is_normal(brightness, contrast)
        candidates = np.flatnonzero(normal)
        bins = self.bin_index(brightness[candidates])
        per_bin = [candidates[bins == b] for b in range(self.num_bins)]
        budget = len(candidates) if num_samples is None else min(num_samples, len(candidates))
        quotas = self._water_fill([len(c) for c in per_bin], budget)
        rng = np.random.default_rng(seed)
        chosen: List[np.ndarray] = [
            rng.choice(c, size=q, replace=False) if q < len(c) else c
            for c, q in zip(per_bin, quotas)
        ]
        indices = np.sort(np.concatenate(chosen)).astype(np.int64) if chosen \
            else np.zeros(0, np.int64)
        low, high = self.brightness_range
        edges = np.linspace(low, high, self.num_bins + 1)
        summary = dict(
            num_images=int(len(brightness)), num_normal=int(len(candidates)),
            num_selected=int(len(indices)),
            rejected=dict(too_dark=int((brightness < low).sum()),
                          too_bright=int((brightness > high).sum()),
                          low_contrast=int((contrast <= self.min_contrast).sum())),
            brightness_range=[low, high], min_contrast=self.min_contrast,
            brightness_definition='mean BT.709 luma of the gamma-encoded RGB in [0, 1]',
            contrast_definition='2 * std of that luma (RMS contrast over its maximum 0.5)',
            bins=[dict(low=round(float(edges[b]), 6), high=round(float(edges[b + 1]), 6),
                       candidates=int(len(per_bin[b])), selected=int(len(chosen[b])))
                  for b in range(self.num_bins)],
            all=_describe(brightness, contrast),
            selected=_describe(brightness[indices], contrast[indices]))
        return indices, summary

    @staticmethod
    def _water_fill(available: List[int], budget: int) -> List[int]:
        """Share ``budget`` equally over bins, capped by ``available``, leftovers re-shared.

        A remainder that does not divide evenly goes to the bins with the most candidates
        left (ties: the lower bin).
        """
        quotas = [0] * len(available)
        open_bins = [b for b, n in enumerate(available) if n > 0]
        while budget > 0 and open_bins:
            share, extra = divmod(budget, len(open_bins))
            open_bins.sort(key=lambda b: (quotas[b] - available[b], b))
            for rank, b in enumerate(open_bins):
                give = min(share + (1 if rank < extra else 0), available[b] - quotas[b])
                quotas[b] += give
                budget -= give
            open_bins = [b for b in open_bins if quotas[b] < available[b]]
        return quotas


def _describe(brightness: np.ndarray, contrast: np.ndarray) -> Dict:
    """Mean, min and max of both statistics (None when empty), as plain floats."""
    out = {}
    for name, values in (('brightness', brightness), ('contrast', contrast)):
        out[name] = dict(mean=float(values.mean()), min=float(values.min()),
                         max=float(values.max())) if len(values) else None
    return out
