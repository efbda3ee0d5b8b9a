"""NYUDv2 RGB-D dataset and pipeline (mmseg), on the real frames in tests/data/nyudv2.

Alignment is checked pixel for pixel: with one seed, each output of the RGB-D transforms must
equal mmseg's stock transform run on that modality alone (so the same random draw moved RGB,
depth and mask), and a forced flip must equal numpy's flip of the loaded depth.
"""
import os.path as osp
import shutil

import mmcv
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from PIL import Image

import mmfusion.seg  # noqa: F401  (registers the modules, as custom_imports does)
from mmfusion.datasets.nyudv2 import NYUDV2_CLASSES, NYUDv2Dataset
from mmfusion.datasets.transforms.depth_loading import EncodeDepth, LoadDepthFromFile

pytestmark = pytest.mark.default_scope('mmseg')

ROOT = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'nyudv2')
FRAMES = ('000464', '000433')  # order of train.txt
LOADING = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthFromFile'),
    dict(type='EncodeDepth'),
    dict(type='LoadAnnotations'),
]


def _dataset(pipeline=(), ann_file='train.txt', root=ROOT):
    return NYUDv2Dataset(ann_file=ann_file, data_root=root, pipeline=list(pipeline))


def _loaded(index=0):
    return _dataset(LOADING)[index]


def test_dataset_lists_the_triplets():
    ds = _dataset()
    assert len(ds) == 2
    assert ds.metainfo['classes'] == NYUDV2_CLASSES and len(NYUDV2_CLASSES) == 40
    assert ds.metainfo['reduce_zero_label'] is False
    for info, frame in zip((ds.get_data_info(0), ds.get_data_info(1)), FRAMES):
        assert info['img_path'] == osp.join(ROOT, 'rgb', f'{frame}.png')
        assert info['seg_map_path'] == osp.join(ROOT, 'masks', f'{frame}.png')
        assert info['depth_path'] == osp.join(ROOT, 'depth', f'{frame}.png')
        assert all(osp.isfile(info[k]) for k in ('img_path', 'seg_map_path', 'depth_path'))


def test_bad_list_line_names_file_and_line(tmp_path):
    (tmp_path / 'train.txt').write_text('rgb/a.png\tmasks/a.png\tdepth/a.png\n'
                                        'rgb/b.png masks/b.png\n')
    with pytest.raises(ValueError, match=r'train\.txt, line 2'):
        _dataset(root=str(tmp_path))
    (tmp_path / 'empty.txt').write_text('\n')
    with pytest.raises(ValueError, match='lists no frame'):
        _dataset(ann_file='empty.txt', root=str(tmp_path))


def test_loading_reads_metres_and_encodes_three_channels():
    results = _loaded(0)
    raw = np.array(Image.open(osp.join(ROOT, 'depth', f'{FRAMES[0]}.png')))
    depth = results['img_depth']
    assert depth.shape == (480, 640, 3) and depth.dtype == np.float32
    np.testing.assert_allclose(depth[..., 0], raw / 5000.0, rtol=1e-6)
    assert (depth[..., 0] == depth[..., 1]).all() and (depth[..., 0] == depth[..., 2]).all()
    assert 1.0 < depth.max() < 6.5 and depth.min() == 0.0  # metres, holes stay 0
    mask = np.array(Image.open(osp.join(ROOT, 'masks', f'{FRAMES[0]}.png')))
    np.testing.assert_array_equal(results['gt_seg_map'], mask)
    clipped = EncodeDepth(max_depth=2.0)({'img_depth': raw / 5000.0})['img_depth']
    assert clipped.max() == 2.0


def _copy_frame(tmp_path, depth_array=None, remove_depth=False):
    for sub in ('rgb', 'masks', 'depth'):
        (tmp_path / sub).mkdir()
        shutil.copy(osp.join(ROOT, sub, f'{FRAMES[0]}.png'), tmp_path / sub)
    depth_file = tmp_path / 'depth' / f'{FRAMES[0]}.png'
    if remove_depth:
        depth_file.unlink()
    elif depth_array is not None:
        Image.fromarray(depth_array).save(depth_file)
    (tmp_path / 'train.txt').write_text(
        f'rgb/{FRAMES[0]}.png\tmasks/{FRAMES[0]}.png\tdepth/{FRAMES[0]}.png\n')
    return str(depth_file)


def test_missing_depth_file_is_named(tmp_path):
    depth_file = _copy_frame(tmp_path, remove_depth=True)
    with pytest.raises(FileNotFoundError, match=f'depth file {depth_file} not found'):
        _dataset(LOADING, root=str(tmp_path))[0]


def test_depth_of_other_size_names_both_files(tmp_path):
    raw = np.array(Image.open(osp.join(ROOT, 'depth', f'{FRAMES[0]}.png')))
    depth_file = _copy_frame(tmp_path, depth_array=raw[:240, :320].copy())
    with pytest.raises(ValueError, match=f'depth file {depth_file} is 320x240.*rgb'):
        _dataset(LOADING, root=str(tmp_path))[0]


def test_eight_bit_depth_is_refused(tmp_path):
    raw = np.array(Image.open(osp.join(ROOT, 'depth', f'{FRAMES[0]}.png')))
    depth_file = _copy_frame(tmp_path, depth_array=(raw // 256).astype(np.uint8))
    with pytest.raises(ValueError, match=f'{depth_file} must be a single-channel 16-bit'):
        LoadDepthFromFile()(dict(depth_path=depth_file))


def _geometry(rgbd=True, prob=0.5, crop=(200, 300)):
    prefix = 'RGBD' if rgbd else ''
    return [
        dict(type='RandomResize', scale=(640, 480), ratio_range=(0.5, 2.0), keep_ratio=True,
             resize_type=f'{prefix}Resize' if rgbd else 'Resize'),
        dict(type=f'{prefix}RandomCrop', crop_size=crop, cat_max_ratio=0.75),
        dict(type=f'{prefix}RandomFlip', prob=prob),
    ]


@pytest.mark.parametrize('seed', [0, 1, 2, 3])
def test_geometry_moves_rgb_depth_and_mask_together(seed):
    loaded = _loaded(seed % 2)
    np.random.seed(seed)
    out = Compose(_geometry())(dict(loaded, img=loaded['img'].copy()))
    assert out['img'].shape[:2] == out['img_depth'].shape[:2] == out['gt_seg_map'].shape
    assert out['img'].shape[:2] == (200, 300) and out['seg_fields'] == ['gt_seg_map']
    # the same seed through mmseg's stock transforms, once per modality
    for key in ('img', 'img_depth'):
        alone = {k: v for k, v in loaded.items() if k not in ('img', 'img_depth')}
        alone['img'] = loaded[key].copy()
        np.random.seed(seed)
        stock = Compose(_geometry(rgbd=False))(alone)
        assert stock['flip'] == out['flip'] and stock['scale'] == out['scale']
        np.testing.assert_array_equal(out[key], stock['img'])
        np.testing.assert_array_equal(out['gt_seg_map'], stock['gt_seg_map'])


def test_forced_flip_matches_numpy():
    loaded = _loaded(0)
    depth = loaded['img_depth'].copy()
    out = Compose([dict(type='RGBDRandomFlip', prob=1.0)])(loaded)
    np.testing.assert_array_equal(out['img_depth'], depth[:, ::-1])
    mask = np.array(Image.open(osp.join(ROOT, 'masks', f'{FRAMES[0]}.png')))
    np.testing.assert_array_equal(out['gt_seg_map'], mask[:, ::-1])


def test_photometric_changes_rgb_only():
    loaded = _loaded(1)
    img, depth = loaded['img'].copy(), loaded['img_depth'].copy()
    np.random.seed(0)
    out = Compose([dict(type='PhotoMetricDistortion')])(loaded)
    assert not np.array_equal(out['img'], img)
    np.testing.assert_array_equal(out['img_depth'], depth)


def test_transforms_refuse_misaligned_pair():
    loaded = _loaded(0)
    loaded['img_depth'] = mmcv.imresize(loaded['img_depth'], (320, 240))
    for cfg in (dict(type='RGBDRandomFlip', prob=1.0), dict(type='PackRGBDSegInputs'),
                dict(type='RGBDRandomCrop', crop_size=(100, 100)),
                dict(type='RGBDResize', scale=(320, 240))):
        with pytest.raises(ValueError, match='img_depth'):
            Compose([cfg])(dict(loaded))


def test_pack_and_preprocess_batch_both_modalities():
    from mmengine.dataset import pseudo_collate

    from mmfusion.models.data_preprocessors.rgbd_seg_data_preprocessor import \
        RGBDSegDataPreProcessor
    ds = _dataset(LOADING + [dict(type='RGBDResize', scale=(320, 240), keep_ratio=True),
                             dict(type='PackRGBDSegInputs')])
    samples = [ds[0], ds[1]]
    assert samples[0]['inputs']['img'].dtype == torch.uint8
    assert samples[0]['inputs']['img_depth'].shape == (3, 240, 320)
    assert samples[0]['data_samples'].depth_path.endswith(f'{FRAMES[0]}.png')
    pre = RGBDSegDataPreProcessor(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
        depth_mean=[0.0] * 3, depth_std=[10.0] * 3, size=(256, 320))
    out = pre(pseudo_collate(samples), training=True)
    img, depth = out['inputs']['img'], out['inputs']['img_depth']
    assert img.shape == depth.shape == (2, 3, 256, 320)
    raw = samples[1]['inputs']
    expected_rgb = (raw['img'][[2, 1, 0]].float() - pre.mean) / pre.std
    torch.testing.assert_close(img[1, :, :240], expected_rgb)
    torch.testing.assert_close(depth[1, :, :240], raw['img_depth'] / 10.0)
    assert (depth[:, :, 240:] == 0).all() and (img[:, :, 240:] == 0).all()
    assert out['data_samples'][0].gt_sem_seg.shape == (256, 320)
    assert (out['data_samples'][0].gt_sem_seg.data[:, 240:] == 255).all()
    with pytest.raises(ValueError, match='depth_mean'):
        RGBDSegDataPreProcessor(mean=[0.] * 3, std=[1.] * 3)
    bad = pseudo_collate(samples)
    bad['inputs']['img_depth'][0] = bad['inputs']['img_depth'][0][:, :100]
    with pytest.raises(ValueError, match='sample 0'):
        pre(bad, training=True)
