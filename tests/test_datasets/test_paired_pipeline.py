"""Paired visible/infrared data pipeline (mmdet), on the real LLVIP sample in tests/data/llvip.

The annotation json comes from mmfusion's LLVIP converter. Geometry is checked pixel for pixel:
each output image must equal the same numpy/mmcv operations applied to its loaded original,
with one set of parameters (read back from the recorded homography) for both modalities.
"""
import json
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from mmengine.utils import import_modules_from_strings

import mmfusion.det  # noqa: F401  (registers the modules, as custom_imports does)
from mmfusion.converters.llvip import create_llvip_infos
from mmfusion.datasets.paired_coco import PairedCocoDataset
from mmfusion.datasets.transforms.paired_loading import LoadPairedImageFromFile
from mmfusion.models.data_preprocessors.paired_data_preprocessor import PairedDetDataPreprocessor

pytestmark = pytest.mark.default_scope('mmdet')


META_KEYS = ('img_id', 'img_path', 'img_ir_path', 'ori_shape', 'img_shape', 'scale_factor',
             'flip', 'flip_direction', 'homography_matrix', 'pad_shape')


@pytest.fixture(scope='module')
def llvip(tmp_path_factory):
    """``(LLVIP root, {split: converted json})`` for the bundled sample."""
    root = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'llvip', 'LLVIP')
    out = str(tmp_path_factory.mktemp('llvip_infos'))
    return root, create_llvip_infos(root, out)


def _dataset(llvip, split='test', pipeline=(), **kwargs):
    root, anns = llvip
    return PairedCocoDataset(
        ann_file=anns[split], data_root=root, data_prefix=dict(img='', img_ir=''),
        metainfo=dict(classes=('person', )), pipeline=list(pipeline), test_mode=True,
        **kwargs)


def _geometry_pipeline(crop=(400, 300)):
    return [
        dict(type='LoadPairedImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='PairedResize', scale=(640, 640), keep_ratio=True),
        dict(type='PairedRandomFlip', prob=1.0, direction='horizontal'),
        dict(type='PairedRandomCrop', crop_size=crop, allow_negative_crop=True),
        dict(type='PairedPad', size_divisor=32),
        dict(type='PackPairedDetInputs', meta_keys=META_KEYS),
    ]


def test_dataset_keeps_both_paths(llvip):
    root, _ = llvip
    ds = _dataset(llvip)
    assert len(ds) == 5
    n_boxes = 0
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        stem = f'{info["img_id"]:06d}'
        assert info['img_path'] == osp.join(root, 'visible', 'test', stem + '.jpg')
        assert info['img_ir_path'] == osp.join(root, 'infrared', 'test', stem + '.jpg')
        assert osp.isfile(info['img_path']) and osp.isfile(info['img_ir_path'])
        n_boxes += len(info['instances'])
    assert n_boxes == 10


def test_dataset_errors(llvip, tmp_path):
    root, anns = llvip
    with pytest.raises(ValueError, match='img_ir'):
        PairedCocoDataset(ann_file=anns['test'], data_root=root, data_prefix=dict(img=''),
                          metainfo=dict(classes=('person', )))
    with open(anns['train']) as f:
        coco = json.load(f)
    del coco['images'][0]['infrared_file_name']
    bad = tmp_path / 'no_ir.json'
    bad.write_text(json.dumps(coco))
    with pytest.raises(KeyError, match='infrared_file_name'):
        PairedCocoDataset(ann_file=str(bad), data_root=root,
                          metainfo=dict(classes=('person', )))


def test_pipeline_same_geometry_for_both_modalities(llvip):
    np.random.seed(0)
    ds = _dataset(llvip, pipeline=_geometry_pipeline())
    n_kept = 0
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        out = ds[i]
        meta = out['data_samples'].metainfo
        vis0, ir0 = mmcv.imread(info['img_path']), mmcv.imread(info['img_ir_path'])
        assert vis0.shape == ir0.shape == (1024, 1280, 3)
        # resize 1280x1024 -> 640x512 (keep ratio), flip, crop 400x300, pad to 416x320
        h_mat = meta['homography_matrix']
        off_x, off_y = int(round(640 - h_mat[0, 2])), int(round(-h_mat[1, 2]))
        assert 0 <= off_x <= 640 - 400 and 0 <= off_y <= 512 - 300

        def expected(img):
            img = mmcv.imresize(img, (640, 512))[:, ::-1]
            img = img[off_y:off_y + 300, off_x:off_x + 400]
            return np.pad(img, ((0, 20), (0, 16), (0, 0)))

        for key, orig in (('img', vis0), ('img_ir', ir0)):
            got = out['inputs'][key].permute(1, 2, 0).numpy()
            assert got.dtype == np.uint8
            np.testing.assert_array_equal(got, expected(orig), err_msg=key)
        assert meta['pad_shape'][:2] == (320, 416) and meta['flip'] is True

        # boxes: transformed once, by the same parameters
        boxes = np.array([ins['bbox'] for ins in info['instances']], dtype=np.float32) * 0.5
        boxes = np.stack([640 - boxes[:, 2], boxes[:, 1], 640 - boxes[:, 0], boxes[:, 3]], 1)
        boxes -= [off_x, off_y, off_x, off_y]
        boxes = np.clip(boxes, 0, [400, 300, 400, 300])
        inside = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        got_boxes = out['data_samples'].gt_instances.bboxes.tensor.numpy()
        np.testing.assert_allclose(got_boxes, boxes[inside], atol=1e-3)
        assert len(out['data_samples'].gt_instances.labels) == inside.sum()
        n_kept += inside.sum()
    assert n_kept > 0  # the box check compared real boxes


def test_identical_pair_stays_identical(llvip):
    """With the visible file as its own partner, every random draw must keep the two equal."""
    info = _dataset(llvip).get_data_info(1)
    info['img_ir_path'] = info['img_path']
    pipeline = Compose([
        dict(type='LoadPairedImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='RandomResize', scale=[(320, 320), (700, 500)], keep_ratio=True,
             resize_type='PairedResize'),
        dict(type='PairedRandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
        dict(type='PairedRandomCrop', crop_size=(0.5, 0.9), crop_type='relative_range',
             allow_negative_crop=True),
        dict(type='PairedPad', size=(704, 512), pad_val=dict(img=7)),
        dict(type='PackPairedDetInputs'),
    ])
    np.random.seed(1)
    for _ in range(4):
        out = pipeline(dict(info))
        assert torch.equal(out['inputs']['img'], out['inputs']['img_ir'])
        assert out['inputs']['img'].shape == (3, 512, 704)


def test_infrared_photometric_only(llvip):
    info = _dataset(llvip).get_data_info(0)
    load = LoadPairedImageFromFile()
    ref = load(dict(info))
    pipeline = Compose([
        LoadPairedImageFromFile(),
        dict(type='InfraredTransform',
             transforms=[dict(type='PhotoMetricDistortion', brightness_delta=64)]),
    ])
    np.random.seed(3)
    out = pipeline(dict(info))
    np.testing.assert_array_equal(out['img'], ref['img'])
    assert out['img_ir'].shape == ref['img_ir'].shape
    assert not np.array_equal(out['img_ir'], ref['img_ir'].astype(np.float32))
    bad = Compose([
        LoadPairedImageFromFile(),
        dict(type='InfraredTransform', transforms=[dict(type='Resize', scale=(64, 64))]),
    ])
    with pytest.raises(ValueError, match='photometric'):
        bad(dict(info))


def test_missing_and_mismatched_infrared(llvip, tmp_path):
    info = _dataset(llvip).get_data_info(0)
    load = LoadPairedImageFromFile()
    missing = dict(info, img_ir_path=str(tmp_path / 'nope.jpg'))
    with pytest.raises(FileNotFoundError) as err:
        load(missing)
    assert str(tmp_path / 'nope.jpg') in str(err.value) and info['img_path'] in str(err.value)
    assert LoadPairedImageFromFile(ignore_empty=True)(dict(missing)) is None

    small = str(tmp_path / 'small.jpg')
    mmcv.imwrite(mmcv.imresize(mmcv.imread(info['img_ir_path']), (640, 512)), small)
    with pytest.raises(ValueError, match='640x512') as err:
        load(dict(info, img_ir_path=small))
    assert small in str(err.value) and info['img_path'] in str(err.value)


def _sample(h, w, seed):
    gen = torch.Generator().manual_seed(seed)
    vis = torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8)
    ir = torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8)
    ds = DetDataSample(metainfo=dict(img_shape=(h, w)))
    ds.gt_instances = InstanceData(
        bboxes=HorizontalBoxes(torch.tensor([[1., 2., 10., 20.]])), labels=torch.tensor([0]))
    return dict(inputs=dict(img=vis, img_ir=ir), data_samples=ds)


def test_data_preprocessor_batches_and_normalises_per_modality():
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    ir_mean, ir_std = [50., 60., 70.], [20., 25., 30.]
    pre = PairedDetDataPreprocessor(mean=mean, std=std, ir_mean=ir_mean, ir_std=ir_std,
                                    bgr_to_rgb=True, pad_size_divisor=32)
    samples = [_sample(50, 60, 0), _sample(40, 70, 1)]
    out = pre(pseudo_collate(samples), training=True)
    vis, ir = out['inputs']['img'], out['inputs']['img_ir']
    assert vis.shape == ir.shape == (2, 3, 64, 96) and vis.dtype == torch.float32
    for b, (s, (h, w)) in enumerate(zip(samples, [(50, 60), (40, 70)])):
        exp_vis = (s['inputs']['img'][[2, 1, 0]].float() - torch.tensor(mean).view(3, 1, 1)) \
            / torch.tensor(std).view(3, 1, 1)
        exp_ir = (s['inputs']['img_ir'][[2, 1, 0]].float()
                  - torch.tensor(ir_mean).view(3, 1, 1)) / torch.tensor(ir_std).view(3, 1, 1)
        torch.testing.assert_close(vis[b, :, :h, :w], exp_vis)
        torch.testing.assert_close(ir[b, :, :h, :w], exp_ir)
        assert vis[b, :, h:].abs().sum() == 0 and vis[b, :, :, w:].abs().sum() == 0
        assert ir[b, :, h:].abs().sum() == 0 and ir[b, :, :, w:].abs().sum() == 0
        ds = out['data_samples'][b]
        assert ds.batch_input_shape == (64, 96)
        assert ds.pad_shape == (64, 64) if b == 0 else ds.pad_shape == (64, 96)
        assert isinstance(ds.gt_instances.bboxes, torch.Tensor)  # boxtype2tensor

    with pytest.raises(ValueError, match='ir_mean'):
        PairedDetDataPreprocessor(mean=mean, std=std)
    bad = _sample(50, 60, 2)
    bad['inputs']['img_ir'] = bad['inputs']['img_ir'][:, :40]
    with pytest.raises(ValueError, match='infrared'):
        pre(pseudo_collate([bad]))


def test_build_from_config_through_registry(llvip):
    """Runner-free smoke: config dict -> registries (default_scope mmdet) -> batch."""
    root, anns = llvip
    cfg = Config(dict(
        default_scope='mmdet',
        custom_imports=dict(imports=['mmfusion.det'], allow_failed_imports=False),
        data_preprocessor=dict(
            type='PairedDetDataPreprocessor', mean=[0, 0, 0], std=[255, 255, 255],
            ir_mean=[0, 0, 0], ir_std=[255, 255, 255], bgr_to_rgb=True, pad_size_divisor=32),
        dataset=dict(
            type='PairedCocoDataset', ann_file=anns['test'], data_root=root,
            data_prefix=dict(img='', img_ir=''), metainfo=dict(classes=('person', )),
            test_mode=True,
            pipeline=[
                dict(type='LoadPairedImageFromFile'),
                dict(type='PairedResize', scale=(320, 320), keep_ratio=True),
                dict(type='LoadAnnotations', with_bbox=True),
                dict(type='PackPairedDetInputs'),
            ])))
    import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.default_scope)
    from mmdet.registry import DATASETS, MODELS
    dataset = DATASETS.build(cfg.dataset)
    assert isinstance(dataset, PairedCocoDataset)
    pre = MODELS.build(cfg.data_preprocessor)
    batch = pre(pseudo_collate([dataset[0], dataset[1]]))
    assert batch['inputs']['img'].shape == batch['inputs']['img_ir'].shape == (2, 3, 256, 320)
    assert batch['data_samples'][0].img_ir_path.endswith('.jpg')
    assert float(batch['inputs']['img_ir'].max()) <= 1.0
