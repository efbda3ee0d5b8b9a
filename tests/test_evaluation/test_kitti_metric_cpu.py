"""mmdet3d's KITTI evaluation runs on CPU after `import mmfusion.det3d` (its rotated overlaps are
routed through mmfusion.ops.rotated_overlaps), checked on the real sample's annotations.

mmdet3d's eval samples the PR curve with about one score threshold per ground-truth box, so a
class/difficulty with fewer than 41 boxes cannot reach 100 AP even with perfect predictions; the
sample's annotations are therefore repeated 41 times.
"""
import copy
import os.path as osp

import mmengine
import numpy as np
import pytest

import mmfusion.det3d  # noqa: F401

CLASSES = ['Pedestrian', 'Cyclist', 'Car']


@pytest.fixture(scope='module')
def repeated_gt(kitti_infos_root):
    from mmdet3d.evaluation.metrics import KittiMetric
    infos = mmengine.load(osp.join(kitti_infos_root, 'kitti_infos_trainval.pkl'))
    annos = [a['kitti_annos'] for a in KittiMetric(ann_file='').convert_annos_to_kitti_annos(infos)]
    # 41 copies: every class/difficulty with one box gets the 41 thresholds AP11/AP40 read
    return [copy.deepcopy(a) for _ in range(41) for a in annos]


def as_detections(gt_annos, shift_x=0.0):
    dets = []
    for a in gt_annos:
        d = {k: np.array(v, copy=True) for k, v in a.items()}
        d['score'] = np.linspace(1.0, 0.5, len(d['name']))  # distinct scores: distinct thresholds
        d['location'][:, 0] += shift_x  # camera x: sideways, keeps the 2D boxes as labelled
        dets.append(d)
    return dets


def test_perfect_detections_score_100(repeated_gt):
    from mmdet3d.evaluation.functional.kitti_utils.eval import kitti_eval
    _, ap = kitti_eval(repeated_gt, as_detections(repeated_gt), CLASSES)
    # the sample's only Cyclist (000001) has occlusion 3 and a 30 px box: in no KITTI difficulty
    for cls in ('Car', 'Pedestrian'):
        for kind in ('3D', 'BEV', '2D'):
            for rule in ('AP11', 'AP40'):
                for level in ('easy', 'moderate', 'hard'):
                    key = f'KITTI/{cls}_{kind}_{rule}_{level}_strict'
                    assert ap[key] == pytest.approx(100.0, abs=1e-3), (key, ap[key])


def test_shifted_detections_fail_3d_and_bev_only(repeated_gt):
    """A 2 m sideways shift leaves the labelled 2D boxes but kills BEV/3D overlap >= 0.5."""
    from mmdet3d.evaluation.functional.kitti_utils.eval import kitti_eval
    _, ap = kitti_eval(repeated_gt, as_detections(repeated_gt, shift_x=2.0), CLASSES)
    assert ap['KITTI/Car_2D_AP40_moderate_strict'] == pytest.approx(100.0, abs=1e-3)
    assert ap['KITTI/Car_3D_AP40_moderate_strict'] == 0
    assert ap['KITTI/Car_BEV_AP40_moderate_strict'] == 0
