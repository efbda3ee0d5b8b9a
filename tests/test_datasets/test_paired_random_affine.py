"""PairedRandomAffine on real LLVIP mosaics: one warp matrix for the visible and infrared image.

With the stock matrix (``about_center=False``) each output image must equal mmdet's stock
``RandomAffine`` run with the same seed on that modality's mosaic, pixel for pixel, and the boxes
must equal the stock ones. With ``about_center=True`` (YOLOv5's ``random_perspective``, as the
official Fusion-Mamba mosaic uses it) both images must equal ``cv2.warpPerspective`` with the
stock random matrix conjugated to the image centres, and with no jitter the output must be the
centre window of the canvas.
"""
import copy
import json
import os.path as osp

import cv2
import numpy as np
import pytest
from mmdet.datasets.transforms import RandomAffine
from mmdet.registry import DATASETS, TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes

import mmfusion.det  # noqa: F401  (registers the modules, as custom_imports does)
from mmfusion.converters.llvip import create_llvip_infos
from mmfusion.datasets.transforms.paired_transforms import PairedRandomAffine

pytestmark = pytest.mark.default_scope('mmdet')

LLVIP_ROOT = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'llvip', 'LLVIP')
SCALE = (160, 128)  # (w, h) of one mosaic tile; the canvas is (256, 320) (H, W)
BORDER = (-SCALE[0] // 2, -SCALE[1] // 2)  # (x, y): output (128, 160), as the configs do
JITTER = dict(max_rotate_degree=10.0, max_translate_ratio=0.1, scaling_ratio_range=(0.5, 1.5),
              max_shear_degree=5.0, border=BORDER)


@pytest.fixture(scope='module')
def anns(tmp_path_factory):
    """Converted LLVIP test split (5 pairs), and the same with the two images swapped."""
    out = tmp_path_factory.mktemp('llvip_affine')
    path = create_llvip_infos(LLVIP_ROOT, str(out))['test']
    with open(path) as f:
        coco = json.load(f)
    swapped = dict(coco, images=[
        dict(im, file_name=im['infrared_file_name'], infrared_file_name=im['file_name'])
        for im in coco['images']])
    (out / 'swapped.json').write_text(json.dumps(swapped))
    return dict(paired=path, swapped=str(out / 'swapped.json'))


def _mosaics(ann_file, pipeline, seed, n=4, load='LoadPairedImageFromFile'):
    dataset = DATASETS.build(dict(
        type='MultiImageMixDataset',
        dataset=dict(
            type='PairedCocoDataset', data_root=LLVIP_ROOT, ann_file=ann_file,
            data_prefix=dict(img='', img_ir=''), metainfo=dict(classes=('person', )),
            pipeline=[dict(type=load), dict(type='LoadAnnotations', with_bbox=True)]),
        pipeline=pipeline))
    np.random.seed(seed)
    return [dataset[i % len(dataset)] for i in range(n)]


def test_stock_matrix_equals_stock_random_affine_on_each_modality(anns):
    mosaic = dict(type='Mosaic', img_scale=SCALE, pad_val=114.0)
    paired = _mosaics(anns['paired'], [dict(mosaic, type='PairedMosaic'),
                                       dict(type='PairedRandomAffine', **JITTER)], seed=5)
    stock_ir = _mosaics(anns['swapped'], [mosaic, dict(type='RandomAffine', **JITTER)], seed=5)
    stock_vis = _mosaics(anns['paired'], [mosaic, dict(type='RandomAffine', **JITTER)], seed=5,
                         load='LoadImageFromFile')
    n_boxes = 0
    for got, ir, vis in zip(paired, stock_ir, stock_vis):
        assert got['img'].shape == got['img_ir'].shape == (128, 160, 3)
        assert got['img_shape'] == (128, 160)
        np.testing.assert_array_equal(got['img'], vis['img'])
        np.testing.assert_array_equal(got['img_ir'], ir['img'])
        assert not np.array_equal(got['img'], got['img_ir'])  # real, different modalities
        np.testing.assert_array_equal(got['gt_bboxes'].numpy(), vis['gt_bboxes'].numpy())
        np.testing.assert_array_equal(got['gt_bboxes_labels'], vis['gt_bboxes_labels'])
        n_boxes += len(got['gt_bboxes'])
    assert n_boxes > 0


def _mosaic_sample(anns, seed=2):
    return _mosaics(anns['paired'], [dict(type='PairedMosaic', img_scale=SCALE, pad_val=114.0)],
                    seed=seed, n=1)[0]


def test_about_center_without_jitter_is_the_centre_window(anns):
    sample = _mosaic_sample(anns)
    canvas_vis, canvas_ir = sample['img'].copy(), sample['img_ir'].copy()
    boxes = sample['gt_bboxes'].numpy().copy()
    still = PairedRandomAffine(max_rotate_degree=0., max_translate_ratio=0.,
                               scaling_ratio_range=(1., 1.), max_shear_degree=0., border=BORDER,
                               about_center=True)
    out = still(sample)
    top, left = -BORDER[1], -BORDER[0]  # (64, 80)
    np.testing.assert_array_equal(out['img'], canvas_vis[top:top + 128, left:left + 160])
    np.testing.assert_array_equal(out['img_ir'], canvas_ir[top:top + 128, left:left + 160])
    expected = HorizontalBoxes(boxes - np.array([left, top, left, top], dtype=np.float32))
    expected.clip_([128, 160])
    expected = expected[expected.is_inside([128, 160]).numpy()]
    np.testing.assert_allclose(out['gt_bboxes'].numpy(), expected.numpy(), atol=1e-4)
    # the stock matrix keeps the top-left corner instead
    sample = _mosaic_sample(anns)
    corner = PairedRandomAffine(max_rotate_degree=0., max_translate_ratio=0.,
                                scaling_ratio_range=(1., 1.), max_shear_degree=0., border=BORDER)
    np.testing.assert_array_equal(corner(sample)['img_ir'], canvas_ir[:128, :160])


def test_about_center_warps_both_images_with_one_centred_matrix(anns):
    n_boxes = 0
    for seed in range(3):
        sample = _mosaic_sample(anns, seed=seed)
        canvas_vis, canvas_ir = sample['img'].copy(), sample['img_ir'].copy()
        boxes = copy.deepcopy(sample['gt_bboxes'])
        np.random.seed(100 + seed)
        out = PairedRandomAffine(**JITTER, about_center=True)(sample)
        # the same draw through the stock matrix, conjugated to the centres
        np.random.seed(100 + seed)
        reference = RandomAffine(**JITTER)  # kept alive: the random method holds a weakref
        stock = reference._get_random_homography_matrix(128, 160)
        to_origin = RandomAffine._get_translation_matrix(-320 / 2, -256 / 2)
        to_centre = RandomAffine._get_translation_matrix(160 / 2, 128 / 2)
        matrix = to_centre @ stock @ to_origin
        centre = matrix @ np.array([160., 128., 1.])  # canvas centre -> output centre + shift
        assert abs(centre[0] - 80) <= 0.1 * 160 + 1e-3 and abs(centre[1] - 64) <= 0.1 * 128 + 1e-3
        for key, canvas in (('img', canvas_vis), ('img_ir', canvas_ir)):
            expected = cv2.warpPerspective(canvas, matrix, dsize=(160, 128),
                                           borderValue=(114, 114, 114))
            np.testing.assert_array_equal(out[key], expected)
        boxes.project_(matrix)
        boxes.clip_([128, 160])
        boxes = boxes[boxes.is_inside([128, 160]).numpy()]
        np.testing.assert_allclose(out['gt_bboxes'].numpy(), boxes.numpy(), atol=1e-3)
        n_boxes += len(boxes)
    assert n_boxes > 0


def test_registered_and_checks_the_pair(anns):
    transform = TRANSFORMS.build(dict(type='PairedRandomAffine', about_center=True))
    assert isinstance(transform, PairedRandomAffine) and 'about_center=True' in repr(transform)
    sample = _mosaic_sample(anns)
    with pytest.raises(KeyError, match='img_ir'):
        transform(dict(sample, img_ir=None))
    with pytest.raises(ValueError, match='out of register'):
        transform(dict(sample, img_ir=sample['img_ir'][:-1]))
