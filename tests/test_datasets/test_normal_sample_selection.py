"""Normal-sample selection for DAMF's prior: statistics on real images, thresholds, strata."""
import glob
import os.path as osp

import mmcv
import numpy as np
import pytest

from mmfusion.datasets.normal_sample_selection import NormalSampleSelector, image_statistics
from mmfusion.datasets.transforms.degradations import degrade

DATA = osp.join(osp.dirname(osp.dirname(__file__)), 'data')


def _read(pattern):
    paths = sorted(glob.glob(osp.join(DATA, pattern)))
    assert paths, pattern
    return [mmcv.imread(p) for p in paths]


def test_statistics_definitions():
    assert image_statistics(np.full((4, 6, 3), 255, np.uint8)) == pytest.approx((1.0, 0.0))
    half = np.zeros((4, 6, 3), np.uint8)
    half[:2] = 255
    assert image_statistics(half) == pytest.approx((0.5, 1.0))
    # BT.709 luma of pure green in RGB order; channel order matters
    green_rgb = np.zeros((2, 2, 3), np.uint8)
    green_rgb[..., 1] = 255
    assert image_statistics(green_rgb, 'rgb')[0] == pytest.approx(0.7152)
    blue_bgr = np.zeros((2, 2, 3), np.uint8)
    blue_bgr[..., 0] = 255
    assert image_statistics(blue_bgr, 'bgr')[0] == pytest.approx(0.0722)
    assert image_statistics(blue_bgr, 'rgb')[0] == pytest.approx(0.2126)
    # float images in [0, 255] (to_float32 loading) give the same values
    img = _read('kitti/training/image_2/000000.png')[0]
    assert image_statistics(img.astype(np.float32)) == pytest.approx(image_statistics(img))
    with pytest.raises(ValueError, match='shape'):
        image_statistics(np.zeros((2, 2, 4), np.uint8))


def test_real_images_and_degradations_are_classified():
    selector = NormalSampleSelector()
    normal = _read('kitti/training/image_2/*.png') + _read('nyudv2/rgb/*.png')
    dark = _read('llvip/LLVIP/visible/*/*.jpg')
    hazy = _read('m3fd/M3FD_sample/Vis/*.png')

    def mask(images):
        stats = np.array([image_statistics(img) for img in images])
        return selector.is_normal(stats[:, 0], stats[:, 1])

    assert mask(normal).all()
    assert not mask(dark).any()
    assert not mask(hazy).any()
    # the degradations of the robustness protocol take well-exposed images out of the range
    for kind, severity in (('overexposure', 5), ('underexposure', 2), ('night', 3),
                           ('fog', 3)):
        degraded = [degrade(img, kind, severity, np.random.default_rng(0)) for img in normal]
        assert not mask(degraded).any(), kind


def test_stratified_selection():
    selector = NormalSampleSelector(num_bins=4)
    brightness = np.array([0.1, 0.31, 0.32, 0.33, 0.34, 0.35, 0.45, 0.55, 0.56, 0.69, 0.8, 0.5])
    contrast = np.array([0.6] * 11 + [0.3])
    idx, summary = selector.select(brightness, contrast, num_samples=6, seed=0)
    # candidates per bin: [0.3,0.4): 5, [0.4,0.5): 1, [0.5,0.6): 2, [0.6,0.7]: 1; budget 6 ->
    # 2 + 1 + 2 + 1 after water-filling the unused share of the single-candidate bins
    per_bin = [(b['candidates'], b['selected']) for b in summary['bins']]
    assert per_bin == [(5, 2), (1, 1), (2, 2), (1, 1)]
    assert summary['num_normal'] == 9 and summary['num_selected'] == 6 == len(idx)
    assert summary['rejected'] == dict(too_dark=1, too_bright=1, low_contrast=1)
    assert set(idx) >= {6, 7, 8, 9} and set(idx) <= {1, 2, 3, 4, 5, 6, 7, 8, 9}
    assert list(idx) == sorted(idx)
    again, _ = selector.select(brightness, contrast, num_samples=6, seed=0)
    np.testing.assert_array_equal(idx, again)
    draws = {tuple(selector.select(brightness, contrast, 6, seed=s)[0]) for s in range(10)}
    assert len(draws) > 1
    everything, summary = selector.select(brightness, contrast)
    assert list(everything) == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert summary['selected']['brightness']['max'] == 0.69
    none, summary = NormalSampleSelector(min_contrast=0.9).select(brightness, contrast)
    assert len(none) == 0 and summary['selected']['brightness'] is None
    with pytest.raises(ValueError, match='brightness_range'):
        NormalSampleSelector(brightness_range=(0.7, 0.3))
    with pytest.raises(ValueError, match='same length'):
        selector.select(brightness, contrast[:3])
