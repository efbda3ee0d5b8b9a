"""RGB degradations (RGBDegradation, RandomRGBDegradation) on the real LLVIP pairs.

Directions checked per kind, strictly monotonic over severity 0..5 on each of the 6 LLVIP
visible frames (reduced to 320x256 to keep the test fast; pixel parameters scale with the short
side): over-exposure raises brightness, under-exposure lowers brightness and contrast, night
lowers brightness and adds noise that grows with severity, Gaussian/defocus blur lower
sharpness (variance of the Laplacian at a 224-pixel short side) at constant brightness, fog
lowers local contrast (differences along a row) and pulls every pixel towards the airlight.
"""
import glob
import os.path as osp

import cv2
import mmcv
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmdet.registry import TRANSFORMS

import mmfusion.det  # noqa: F401  (registers the transforms, as custom_imports does)
from mmfusion.converters.llvip import create_llvip_infos
from mmfusion.datasets.normal_sample_selection import image_statistics
from mmfusion.datasets.paired_coco import PairedCocoDataset
from mmfusion.datasets.transforms.degradations import (DEGRADATION_KINDS, FOG_AIRLIGHT,
                                                       RandomRGBDegradation, RGBDegradation,
                                                       degradation_parameters, degrade)
from mmfusion.datasets.transforms.paired_loading import LoadPairedImageFromFile

pytestmark = pytest.mark.default_scope('mmdet')

LLVIP = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'llvip', 'LLVIP')
SEVERITIES = range(6)


@pytest.fixture(scope='module')
def frames():
    paths = sorted(glob.glob(osp.join(LLVIP, 'visible', '*', '*.jpg')))
    assert len(paths) == 6
    return [mmcv.imresize(mmcv.imread(p), (320, 256)) for p in paths]


@pytest.fixture(scope='module')
def llvip_infos(tmp_path_factory):
    return create_llvip_infos(LLVIP, str(tmp_path_factory.mktemp('llvip_infos')))


def _sharpness(img):
    h, w = img.shape[:2]
    s = 224 / min(h, w)
    grey = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), (round(w * s), round(h * s)),
                      interpolation=cv2.INTER_AREA)
    return cv2.Laplacian(grey.astype(np.float64), cv2.CV_64F).var()


def _row_contrast(img):
    """Mean absolute difference of horizontally adjacent luma values, in [0, 1]."""
    luma = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float64) / 255.
    return np.abs(np.diff(luma, axis=1)).mean()


def _series(img, kind, measure, seed=0):
    return np.array([measure(degrade(img, kind, s, np.random.default_rng(seed)))
                     for s in SEVERITIES])


def _strictly(values, direction):
    diffs = np.diff(values)
    return bool((diffs > 0).all() if direction == 'up' else (diffs < 0).all())


def test_every_kind_moves_its_statistics_monotonically(frames):
    brightness = lambda im: image_statistics(im)[0]  # noqa: E731
    contrast = lambda im: image_statistics(im)[1]  # noqa: E731
    for img in frames:
        assert _strictly(_series(img, 'overexposure', brightness), 'up')
        saturated = _series(img, 'overexposure', lambda im: (im == 255).mean())
        assert (np.diff(saturated) >= 0).all() and saturated[-1] > saturated[0]
        assert _strictly(_series(img, 'underexposure', brightness), 'down')
        assert _strictly(_series(img, 'underexposure', contrast), 'down')
        assert _strictly(_series(img, 'night', brightness), 'down')
        for kind in ('blur', 'defocus_blur'):
            assert _strictly(_series(img, kind, _sharpness), 'down'), kind
            assert np.ptp(_series(img, kind, brightness)) < 0.01, kind
        # fog scales every difference within a row by t (the airlight term is constant along
        # a row): local contrast falls. (Global RMS contrast can rise on a very dark frame:
        # the depth proxy brightens the top more than the bottom.)
        assert _strictly(_series(img, 'fog', _row_contrast), 'down')
        to_airlight = _series(img, 'fog', lambda im: np.abs(im / 255. - FOG_AIRLIGHT).mean())
        assert _strictly(to_airlight, 'down')


def test_night_noise_grows_with_severity(frames):
    for img in frames:
        # two seeds give independent noise on the same darkened image: their difference
        # is noise only (std * sqrt(2)); zero at severity 0
        noise = [np.std(degrade(img, 'night', s, np.random.default_rng(1)).astype(float)
                        - degrade(img, 'night', s, np.random.default_rng(2))) / np.sqrt(2)
                 for s in SEVERITIES]
        assert noise[0] == 0 and _strictly(noise, 'up') and noise[1] > 1.0


def test_uint8_shape_identity_interpolation_and_errors(frames):
    img = frames[0]
    for kind in DEGRADATION_KINDS:
        for severity in (1, 5):
            out = degrade(img, kind, severity, np.random.default_rng(0))
            assert out.dtype == np.uint8 and out.shape == img.shape
            assert not np.array_equal(out, img), (kind, severity)
        np.testing.assert_array_equal(degrade(img, kind, 0), img)
        grey = degrade(img[..., 1], kind, 3, np.random.default_rng(0))
        assert grey.shape == img.shape[:2] and grey.dtype == np.uint8
    # fractional severity: parameters and effect between the two levels
    assert degradation_parameters('blur', 2.5) == dict(sigma=2.5)
    b = [image_statistics(degrade(img, 'underexposure', s))[0] for s in (2, 2.5, 3)]
    assert b[0] > b[1] > b[2]
    with pytest.raises(ValueError, match='unknown degradation kind'):
        RGBDegradation(kind='snow', severity=1)
    with pytest.raises(ValueError, match='severity'):
        RGBDegradation(kind='fog', severity=6)
    with pytest.raises(TypeError, match='uint8'):
        degrade(img.astype(np.float32), 'fog', 1)
    with pytest.raises(ValueError, match='prob'):
        RandomRGBDegradation(kinds='fog', prob=1.5)
    with pytest.raises(ValueError, match='severity'):
        RandomRGBDegradation(kinds=['fog'], severities=[0, 7])


def test_transform_touches_rgb_only_and_is_deterministic(llvip_infos):
    ds = PairedCocoDataset(ann_file=llvip_infos['test'], data_root=LLVIP,
                           metainfo=dict(classes=('person', )), test_mode=True)
    infos = [ds.get_data_info(i) for i in range(2)]
    loaded = [LoadPairedImageFromFile()(dict(info)) for info in infos]
    night = TRANSFORMS.build(dict(type='RGBDegradation', kind='night', severity=3, seed=7))
    out = [night(LoadPairedImageFromFile()(dict(info))) for info in infos]
    for o, ref in zip(out, loaded):
        np.testing.assert_array_equal(o['img_ir'], ref['img_ir'])  # infrared untouched
        assert o['img'].dtype == np.uint8 and o['img'].shape == ref['img'].shape
        assert o['img'].mean() < ref['img'].mean()
        assert o['rgb_degradation'] == dict(kind='night', severity=3)
    # same seed and image: the same output, also from a new instance
    again = RGBDegradation('night', 3, seed=7)(LoadPairedImageFromFile()(dict(infos[0])))
    np.testing.assert_array_equal(again['img'], out[0]['img'])
    # another seed: other noise
    other = RGBDegradation('night', 3, seed=8)(LoadPairedImageFromFile()(dict(infos[0])))
    assert not np.array_equal(other['img'], out[0]['img'])
    # same pixels under another file name: other noise (the seed mixes with the image name)
    renamed = dict(loaded[0], img=loaded[0]['img'].copy(), img_path='elsewhere/other.jpg')
    assert not np.array_equal(night(renamed)['img'], out[0]['img'])
    # the folder does not matter, only the name (runs repeat on any machine)
    moved = dict(loaded[0], img=loaded[0]['img'].copy(),
                 img_path=osp.join('/mnt/copy', osp.basename(infos[0]['img_path'])))
    np.testing.assert_array_equal(night(moved)['img'], out[0]['img'])
    # seed None: numpy's global generator (seeded by mmengine's randomness) decides
    unseeded = RGBDegradation('night', 3)
    np.random.seed(0)
    first = unseeded(dict(loaded[0], img=loaded[0]['img'].copy()))['img']
    np.random.seed(0)
    np.testing.assert_array_equal(unseeded(dict(loaded[0], img=loaded[0]['img'].copy()))['img'],
                                  first)
    with pytest.raises(TypeError, match=r'190001.jpg.*uint8'):
        night(LoadPairedImageFromFile(to_float32=True)(dict(infos[0])))


def test_random_degradation():
    img = np.full((32, 40, 3), 120, np.uint8)
    never = RandomRGBDegradation(kinds=['fog'], prob=0.0, seed=0)
    out = never(dict(img=img.copy(), img_path='a.jpg'))
    assert out['rgb_degradation'] is None and np.array_equal(out['img'], img)
    mixed = RandomRGBDegradation(kinds=['overexposure', 'underexposure'], severities=[2, 4],
                                 prob=1.0, seed=3)
    drawn = [mixed(dict(img=img.copy(), img_path=f'{i}.jpg'))['rgb_degradation']
             for i in range(40)]
    assert {(d['kind'], d['severity']) for d in drawn} == {
        ('overexposure', 2), ('overexposure', 4), ('underexposure', 2), ('underexposure', 4)}
    # fixed per image with a seed
    assert [mixed(dict(img=img.copy(), img_path=f'{i}.jpg'))['rgb_degradation']
            for i in range(40)] == drawn
    for d, i in zip(drawn, range(40)):
        res = mixed(dict(img=img.copy(), img_path=f'{i}.jpg'))
        assert (res['img'].mean() > 120) == (d['kind'] == 'overexposure')
    half = RandomRGBDegradation(kinds='blur', prob=0.5, seed=0)
    applied = [half(dict(img=img.copy(), img_path=f'{i}.jpg'))['rgb_degradation'] is not None
               for i in range(200)]
    assert 60 < sum(applied) < 140


def test_inside_a_paired_pipeline(llvip_infos):
    """Degrade, then the paired geometry: the RGB image is the degraded original resized and
    flipped; the infrared image equals the pipeline without the degradation."""
    pipeline = [
        dict(type='LoadPairedImageFromFile'),
        dict(type='RGBDegradation', kind='fog', severity=3, seed=0),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='PairedResize', scale=(320, 320), keep_ratio=True),
        dict(type='PairedRandomFlip', prob=1.0),
        dict(type='PackPairedDetInputs'),
    ]
    ds = PairedCocoDataset(ann_file=llvip_infos['test'], data_root=LLVIP,
                           metainfo=dict(classes=('person', )), test_mode=True,
                           pipeline=pipeline)
    clean = Compose([t for t in pipeline if t['type'] != 'RGBDegradation'])
    for i in (0, 3):
        out = ds[i]
        info = ds.get_data_info(i)
        ref = clean(dict(info))
        torch.testing.assert_close(out['inputs']['img_ir'], ref['inputs']['img_ir'])
        expected = mmcv.imflip(mmcv.imresize(
            degrade(mmcv.imread(info['img_path']), 'fog', 3), (320, 256)))
        np.testing.assert_array_equal(out['inputs']['img'].permute(1, 2, 0).numpy(), expected)
        assert len(out['data_samples'].gt_instances) == len(info['instances'])
