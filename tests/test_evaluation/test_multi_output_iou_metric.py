"""MultiOutputIoUMetric on the real NYUDv2 label maps: each output scored as mmseg's IoUMetric."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmseg.evaluation import IoUMetric
from PIL import Image

import mmfusion.seg  # noqa: F401  (registers the modules, as custom_imports does)
from mmfusion.datasets.nyudv2 import NYUDV2_CLASSES
from mmfusion.evaluation.multi_output_iou_metric import MultiOutputIoUMetric

pytestmark = pytest.mark.default_scope('mmseg')

ROOT = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'nyudv2')


def _samples():
    """Data samples (as dicts) with the real labels; ensemble = label (void -> 0), rgb = all
    wall (class 0), depth = labels with the left half turned into floor (class 1)."""
    samples = []
    for frame in ('000433', '000464'):
        label = torch.from_numpy(np.array(Image.open(osp.join(ROOT, 'masks', f'{frame}.png'))))
        label = label.long()[None]
        perfect = torch.where(label == 255, torch.zeros_like(label), label)
        half = perfect.clone()
        half[..., :320] = 1
        samples.append(dict(
            img_path=frame, gt_sem_seg=dict(data=label), pred_sem_seg=dict(data=perfect),
            pred_sem_seg_rgb=dict(data=torch.zeros_like(label)),
            pred_sem_seg_depth=dict(data=half)))
    return samples


def _stock(field):
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dict(classes=NYUDV2_CLASSES)
    metric.process(None, [dict(s, pred_sem_seg=s[field]) for s in _samples()])
    return metric.evaluate(2)


def test_each_output_scores_as_stock_iou_metric():
    metric = MultiOutputIoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dict(classes=NYUDV2_CLASSES)
    metric.process(None, _samples())
    metrics = metric.evaluate(2)
    assert metrics['ensemble/mIoU'] == 100.0 and metrics['ensemble/aAcc'] == 100.0
    for name, field in (('ensemble', 'pred_sem_seg'), ('rgb', 'pred_sem_seg_rgb'),
                        ('depth', 'pred_sem_seg_depth')):
        for key, value in _stock(field).items():
            assert metrics[f'{name}/{key}'] == value
    # all-wall: IoU of wall = its share of the labelled pixels, every other present class 0
    labels = np.concatenate([s['gt_sem_seg']['data'].numpy().ravel() for s in _samples()])
    labelled = labels[labels != 255]
    present = np.unique(labelled).size
    wall_iou = (labelled == 0).mean()
    assert metrics['rgb/mIoU'] == pytest.approx(100 * wall_iou / present, abs=0.01)
    assert 0 < metrics['depth/mIoU'] < 100


def test_missing_output_field_and_file_options_are_refused():
    metric = MultiOutputIoUMetric()
    metric.dataset_meta = dict(classes=NYUDV2_CLASSES)
    sample = _samples()[0]
    del sample['pred_sem_seg_depth']
    with pytest.raises(ValueError, match='pred_sem_seg_depth'):
        metric.process(None, [sample])
    with pytest.raises(ValueError, match='only evaluates'):
        MultiOutputIoUMetric(format_only=True)
