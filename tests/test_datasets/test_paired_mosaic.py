"""PairedMosaic through mmdet's MultiImageMixDataset over PairedCocoDataset, on real LLVIP pairs.

Pixel alignment is checked two ways: with every infrared partner replaced by its visible image,
the two mosaics must be identical; with the real infrared images, ``img_ir`` must equal mmdet's
stock ``Mosaic`` run, with the same seed, on a dataset whose visible images *are* the infrared
ones (so the same four samples at the same places), and the boxes must equal the stock ones.
"""
import json
import os.path as osp

import numpy as np
import pytest
from mmdet.registry import DATASETS

import mmfusion.det  # noqa: F401  (registers the modules, as custom_imports does)
from mmfusion.converters.llvip import create_llvip_infos

pytestmark = pytest.mark.default_scope('mmdet')

LLVIP_ROOT = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'llvip', 'LLVIP')
SCALE = (160, 128)  # (w, h) of one mosaic tile; the canvas is (256, 320)


@pytest.fixture(scope='module')
def anns(tmp_path_factory):
    """Converted test split (5 pairs), plus variants with swapped and identical partners."""
    out = tmp_path_factory.mktemp('llvip_mosaic')
    path = create_llvip_infos(LLVIP_ROOT, str(out))['test']
    with open(path) as f:
        coco = json.load(f)
    variants = {'paired': path}
    for name, pick in (('swapped', lambda im: (im['infrared_file_name'], im['file_name'])),
                       ('identical', lambda im: (im['file_name'], im['file_name']))):
        images = []
        for im in coco['images']:
            vis, ir = pick(im)
            images.append(dict(im, file_name=vis, infrared_file_name=ir))
        variant = out / f'{name}.json'
        variant.write_text(json.dumps(dict(coco, images=images)))
        variants[name] = str(variant)
    return variants


def _mix_dataset(ann_file, mosaic_type='PairedMosaic', load='LoadPairedImageFromFile'):
    return DATASETS.build(dict(
        type='MultiImageMixDataset',
        dataset=dict(
            type='PairedCocoDataset', data_root=LLVIP_ROOT, ann_file=ann_file,
            data_prefix=dict(img='', img_ir=''), metainfo=dict(classes=('person', )),
            pipeline=[dict(type=load), dict(type='LoadAnnotations', with_bbox=True)]),
        pipeline=[dict(type=mosaic_type, img_scale=SCALE, pad_val=114.0)]))


def _draws(dataset, seed, n=5):
    np.random.seed(seed)
    out = [dataset[i % len(dataset)] for i in range(n)]
    return out, np.random.rand()  # the draw after the mosaics: same random state?


def test_identical_partners_give_identical_mosaics(anns):
    samples, _ = _draws(_mix_dataset(anns['identical']), seed=0)
    for s in samples:
        assert s['img'].shape == (256, 320, 3)
        np.testing.assert_array_equal(s['img_ir'], s['img'])


def test_infrared_mosaic_is_the_stock_mosaic_of_the_infrared_images(anns):
    paired, after_paired = _draws(_mix_dataset(anns['paired']), seed=3)
    stock_ir, after_stock = _draws(_mix_dataset(anns['swapped'], 'Mosaic'), seed=3)
    stock_vis, _ = _draws(_mix_dataset(anns['paired'], 'Mosaic', 'LoadImageFromFile'), seed=3)
    assert after_paired == after_stock  # one stock pass's worth of random draws
    n_boxes = 0
    for got, ir, vis in zip(paired, stock_ir, stock_vis):
        assert got['img_ir'].shape == got['img'].shape == (256, 320, 3)
        np.testing.assert_array_equal(got['img_ir'], ir['img'])
        np.testing.assert_array_equal(got['img'], vis['img'])
        assert not np.array_equal(got['img'], got['img_ir'])  # real, different modalities
        np.testing.assert_array_equal(got['gt_bboxes'].numpy(), vis['gt_bboxes'].numpy())
        np.testing.assert_array_equal(got['gt_bboxes_labels'], vis['gt_bboxes_labels'])
        assert got['img_shape'] == (256, 320)
        n_boxes += len(got['gt_bboxes'])
    assert n_boxes > 0
    # the four tiles really differ between draws (the comparison is not trivially equal)
    assert not np.array_equal(paired[0]['img_ir'], paired[1]['img_ir'])


def test_skipped_mosaic_leaves_the_pair_alone(anns):
    dataset = _mix_dataset(anns['paired'])
    dataset.pipeline[0].prob = 0.0
    sample = dataset[1]
    raw = dataset.dataset[1]
    np.testing.assert_array_equal(sample['img'], raw['img'])
    np.testing.assert_array_equal(sample['img_ir'], raw['img_ir'])


def test_mix_results_without_infrared_raise(anns):
    dataset = _mix_dataset(anns['paired'], load='LoadImageFromFile')
    with pytest.raises(KeyError, match='img_ir'):
        dataset[0]
