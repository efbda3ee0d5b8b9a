"""tools/analysis_tools/eval_degradations.py: per-set Runner tests on the real LLVIP sample.

The model is a test double whose behaviour depends on what it sees: it returns the ground-truth
boxes (score 1) when the mean of its visible input exceeds a threshold stored in a buffer, and a
single wrong box otherwise. The threshold (0.1 on [0, 1] pixels) comes from the checkpoint the
test writes (a model that did not load it has an infinite threshold and finds nothing). The
LLVIP test frames have mean 0.22-0.26, so the table must read COCO mAP 1.0 where the degradation
keeps them bright enough (clean, over-exposure, fog, blur) and 0.0 where it darkens them below
0.1 (under-exposure and night at severity 3): the degradation reached the model through the
config's test pipeline and mmengine's Runner, and the real CocoMetric scored it.
"""
import json
import os.path as osp

import pytest
import torch
from mmdet.models.detectors import BaseDetector
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.structures import InstanceData

import mmfusion.det  # noqa: F401
from mmfusion.converters.llvip import create_llvip_infos
from tests.utils import load_tool

pytestmark = pytest.mark.default_scope('mmdet')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
LLVIP = osp.join(REPO, 'tests', 'data', 'llvip', 'LLVIP')
BASES = osp.join(REPO, 'configs', '_base_', 'degradations')
eval_degradations = load_tool('tools/analysis_tools/eval_degradations.py',
                              'eval_degradations_tool')


@MODELS.register_module(force=True)
class BrightnessGatedOracle(BaseDetector):
    """Ground truth when the visible input is bright enough, a wrong box otherwise."""

    def __init__(self, data_preprocessor=None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.register_buffer('threshold', torch.tensor(float('inf')))

    def predict(self, batch_inputs, batch_data_samples, rescale=True):
        for img, sample in zip(batch_inputs['img'], batch_data_samples):
            h, w = sample.img_shape
            gt = sample.gt_instances
            if img[:, :h, :w].mean() > self.threshold:
                # LoadAnnotations runs after the resize: boxes in original image pixels
                bboxes, labels = gt.bboxes, gt.labels
            else:
                bboxes, labels = torch.tensor([[0., 0., 2., 2.]]), torch.zeros(1).long()
            sample.pred_instances = InstanceData(bboxes=bboxes, labels=labels,
                                                 scores=torch.ones(len(labels)))
        return batch_data_samples

    def loss(self, batch_inputs, batch_data_samples):
        raise NotImplementedError

    def _forward(self, batch_inputs, batch_data_samples=None):
        return batch_inputs

    def extract_feat(self, batch_inputs):
        return batch_inputs


def _write_config(tmp_path, ann_file):
    text = f"""
_base_ = ['{BASES}/rgb_degradation_train.py', '{BASES}/rgb_degradation_test_sets.py',
          '{BASES}/rgb_scene_test_sets.py']
default_scope = 'mmdet'
custom_imports = dict(imports=['mmfusion.det'], allow_failed_imports=False)
log_level = 'WARNING'
model = dict(
    type='BrightnessGatedOracle',
    data_preprocessor=dict(type='PairedDetDataPreprocessor', mean=[0, 0, 0],
                           std=[255, 255, 255], ir_mean=[0, 0, 0], ir_std=[255, 255, 255],
                           bgr_to_rgb=True))
train_degradation = dict(_base_.train_degradation, kinds=['overexposure', 'fog'])
test_pipeline = [
    dict(type='LoadPairedImageFromFile'),
    dict(type='PairedResize', scale=(320, 320), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackPairedDetInputs'),
]
test_dataloader = dict(
    batch_size=1, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='PairedCocoDataset', data_root='{LLVIP}', ann_file='{ann_file}',
                 data_prefix=dict(img='', img_ir=''), metainfo=dict(classes=('person', )),
                 test_mode=True, pipeline=test_pipeline))
test_evaluator = dict(type='CocoMetric', ann_file='{ann_file}', metric='bbox')
test_cfg = dict(type='TestLoop')
"""
    path = tmp_path / 'oracle_llvip.py'
    path.write_text(text)
    return str(path)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('eval_degradations')
    ann = create_llvip_infos(LLVIP, str(tmp / 'infos'))['test']
    cfg_path = _write_config(tmp, ann)
    model = BrightnessGatedOracle()
    model.threshold.fill_(0.1)
    ckpt = str(tmp / 'oracle.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    return tmp, cfg_path, ckpt


def test_scene_sets_table(setup):
    tmp, cfg_path, ckpt = setup
    work_dir = str(tmp / 'scenes')
    record = eval_degradations.main([cfg_path, ckpt, '--test-sets', 'scene_test_sets',
                                     '--work-dir', work_dir])
    rows = {row['name']: row for row in record['sets']}
    assert list(rows) == ['normal', 'overexposed', 'underexposed', 'night']
    assert record['seen_kinds'] == ['overexposure', 'fog']  # from train_degradation
    expected = dict(normal=(1.0, 'clean'), overexposed=(1.0, 'seen'),
                    underexposed=(0.0, 'unseen'), night=(0.0, 'unseen'))
    for name, (m_ap, split) in expected.items():
        assert rows[name]['metrics']['coco/bbox_mAP'] == pytest.approx(m_ap), name
        assert rows[name]['split'] == split
    assert rows['night']['kind'] == 'night' and rows['night']['severity'] == 3
    assert rows['normal']['transform'] is None
    with open(osp.join(work_dir, 'degradation_results.json')) as f:
        assert json.load(f)['sets'][2]['metrics']['coco/bbox_mAP'] == 0.0
    with open(osp.join(work_dir, 'degradation_results.md')) as f:
        table = f.read()
    assert '| set | kind | severity | split | coco/bbox_mAP |' in table
    assert '| overexposed | overexposure | 3 | seen | 1.0000 |' in table
    assert osp.isdir(osp.join(work_dir, 'night'))  # one Runner work dir per set


def test_kinds_and_severities_from_the_command_line(setup):
    tmp, cfg_path, ckpt = setup
    record = eval_degradations.main([
        cfg_path, ckpt, '--kinds', 'fog', 'underexposure', '--severities', '4',
        '--no-clean', '--seen-kinds', 'fog', '--metric-keys', 'coco/bbox_mAP_50',
        '--work-dir', str(tmp / 'kinds')])
    maps = {row['name']: (row['metrics']['coco/bbox_mAP_50'], row['split'])
            for row in record['sets']}
    assert maps == {'fog-s4': (1.0, 'seen'), 'underexposure-s4': (0.0, 'unseen')}
    transform = record['sets'][0]['transform']
    assert transform == dict(type='RGBDegradation', kind='fog', severity=4, seed=0)


def test_pipeline_insertion_and_errors(setup):
    tmp, cfg_path, ckpt = setup
    cfg = Config.fromfile(cfg_path)
    fog = dict(type='RGBDegradation', kind='fog', severity=2)
    set_cfg = eval_degradations.set_config(cfg, 'fog', fog, ckpt, str(tmp))
    types = [t['type'] for t in set_cfg.test_dataloader.dataset.pipeline]
    assert types[:2] == ['LoadPairedImageFromFile', 'RGBDegradation']
    assert len(cfg.test_dataloader.dataset.pipeline) == 4  # the original is untouched
    assert set_cfg.load_from == ckpt and set_cfg.work_dir == osp.join(str(tmp), 'fog')
    with pytest.raises(ValueError, match='loading transform'):
        eval_degradations.insert_after_loading([dict(type='PackPairedDetInputs')],
                                               dict(type='RGBDegradation'))
    with pytest.raises(KeyError, match='no_such_sets'):
        eval_degradations.main([cfg_path, ckpt, '--test-sets', 'no_such_sets',
                                '--work-dir', str(tmp / 'none')])
