"""KITTI evaluation options on the real sample: R11/R40 keys and the 41-point cap, the
repeat-infos tool, submission files (KittiMetric format_only via tools/test.py) and the
calibration-robustness tool (tools/analysis_tools/eval_calib_robustness.py).

Ground truth as predictions: the infos' camera-frame GT boxes converted to the LiDAR frame as
``KittiDataset.parse_ann_info`` does, score 1, fed to the stock ``KittiMetric``.
"""
import glob
import json
import math
import os
import os.path as osp

import mmengine
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData

import mmfusion.det3d  # noqa: F401
from tests.utils import (PYTHON, REPO_ROOT, TINY_MVXNET_CFG, as_cli_options, kitti_cfg_options,
                         load_tool, run_tool)

pytestmark = pytest.mark.default_scope('mmdet3d')

CLASSES = ['Pedestrian', 'Cyclist', 'Car']  # the MVX-Net / SSLFusion KITTI 3-class order
KITTI = osp.join(REPO_ROOT, 'tests', 'data', 'kitti', 'training')
# image+LiDAR configs the tool tests run on (SSLFusion's configs are added here)
CONFIGS = [TINY_MVXNET_CFG]

repeat_tool = load_tool('tools/misc/repeat_kitti_infos.py', 'repeat_kitti_infos_tool')
robustness_tool = load_tool('tools/analysis_tools/eval_calib_robustness.py',
                            'eval_calib_robustness_tool')


def gt_as_predictions(ann_file):
    """One KittiMetric result per frame (``sample_idx`` = list position): the GT boxes."""
    from mmdet3d.structures import Box3DMode, CameraInstance3DBoxes
    results = []
    for idx, info in enumerate(mmengine.load(ann_file)['data_list']):
        inst = [i for i in info['instances'] if 0 <= i['bbox_label_3d'] < len(CLASSES)]
        lidar2cam = np.array(info['images']['CAM2']['lidar2cam'])
        boxes = CameraInstance3DBoxes(
            np.array([i['bbox_3d'] for i in inst], dtype=np.float32).reshape(-1, 7)).convert_to(
                Box3DMode.LIDAR, np.linalg.inv(lidar2cam))
        results.append(dict(
            pred_instances_3d=InstanceData(
                bboxes_3d=boxes, scores_3d=torch.ones(len(inst)),
                labels_3d=torch.tensor([i['bbox_label_3d'] for i in inst], dtype=torch.long)),
            pred_instances=InstanceData(), sample_idx=idx))
    return results


def kitti_metric(ann_file, **kwargs):
    from mmdet3d.evaluation.metrics import KittiMetric
    metric = KittiMetric(ann_file=ann_file, **kwargs)
    metric.dataset_meta = dict(classes=CLASSES)
    return metric


def ap40_cap(n):
    """AP_R40 of perfect detections of n valid boxes (tools/misc/repeat_kitti_infos.py)."""
    return 100.0 if n >= 41 else max(n - 1, 0) / 40 * 100


def ap11_cap(n):
    return 100.0 if n >= 41 else (0.0 if n == 0 else (math.floor((n - 1) / 4) + 1) / 11 * 100)


def test_r11_r40_keys_and_the_41_point_cap(kitti_infos_root, tmp_path):
    ann = osp.join(kitti_infos_root, 'kitti_infos_trainval.pkl')
    counts = repeat_tool.count_gt(mmengine.load(ann))
    # the sample's Car boxes: one easy (103 px), three moderate/hard (33, 30 px); the 22 and
    # 21 px ones are below every difficulty's minimum height
    assert [counts[('Car', d)] for d in ('easy', 'moderate', 'hard')] == [1, 3, 3]
    metrics = kitti_metric(ann).compute_metrics(gt_as_predictions(ann))
    for cls in CLASSES:
        for kind in ('3D', 'BEV', '2D'):
            for rule in ('AP11', 'AP40'):
                for level in ('easy', 'moderate', 'hard'):
                    key = f'pred_instances_3d/KITTI/{cls}_{kind}_{rule}_{level}_strict'
                    assert key in metrics, sorted(metrics)
                    assert 0.0 <= metrics[key] <= 100.0
    for level in ('easy', 'moderate', 'hard'):
        n = counts[('Car', level)]
        for kind in ('3D', 'BEV', '2D'):
            prefix = f'pred_instances_3d/KITTI/Car_{kind}'
            assert metrics[f'{prefix}_AP40_{level}_strict'] == pytest.approx(ap40_cap(n), abs=1e-3)
            assert metrics[f'{prefix}_AP11_{level}_strict'] == pytest.approx(ap11_cap(n), abs=1e-3)
    assert metrics['pred_instances_3d/KITTI/Car_3D_AP40_moderate_strict'] == pytest.approx(5.0)

    # 14 copies: 42 moderate Car boxes reach 100, the 14 easy ones stay capped at 13/40
    out = str(tmp_path / 'x14.pkl')
    summary = repeat_tool.main([ann, out, '--times', '14'])
    assert summary['num_frames'] == 6 * 14 and summary['counts_after']['Car/moderate'] == 42
    metrics = kitti_metric(out).compute_metrics(gt_as_predictions(out))
    for kind in ('3D', 'BEV', '2D'):
        prefix = f'pred_instances_3d/KITTI/Car_{kind}'
        assert metrics[f'{prefix}_AP40_moderate_strict'] == pytest.approx(100.0, abs=1e-3)
        assert metrics[f'{prefix}_AP40_hard_strict'] == pytest.approx(100.0, abs=1e-3)
        assert metrics[f'{prefix}_AP40_easy_strict'] == pytest.approx(32.5, abs=1e-3)


def test_repeat_tool_output_and_errors(kitti_infos_root, tmp_path):
    ann = osp.join(kitti_infos_root, 'kitti_infos_trainval.pkl')
    src = mmengine.load(ann)
    out = str(tmp_path / 'sub' / 'rep.pkl')
    summary = repeat_tool.main([ann, out])  # default --min-gt 41: Car easy has 1 box -> x41
    assert summary['times'] == 41
    assert summary['counts_after']['Car/easy'] == 41
    assert summary['counts_after']['Cyclist/moderate'] == 0  # its only box is in no difficulty
    rep = mmengine.load(out)
    assert rep['metainfo'] == src['metainfo']
    assert [i['sample_idx'] for i in rep['data_list']] == list(range(6 * 41))
    for i, info in enumerate(rep['data_list']):
        orig = src['data_list'][i % 6]
        assert info['lidar_points']['lidar_path'] == orig['lidar_points']['lidar_path']
        assert info['images']['CAM2']['img_path'] == orig['images']['CAM2']['img_path']
        assert info['instances'] == orig['instances']
    assert os.listdir(osp.dirname(out)) == ['rep.pkl']  # no temporary file left behind
    assert repeat_tool.repeat_factor({('Car', 'easy'): 3, ('Car', 'hard'): 0}, 41) == 14

    with pytest.raises(ValueError, match='overwrite the input'):
        repeat_tool.main([ann, ann])
    with pytest.raises(FileNotFoundError, match='no info file'):
        repeat_tool.main([str(tmp_path / 'missing.pkl'), out])
    mmengine.dump([dict(a=1)], str(tmp_path / 'v1.pkl'))
    with pytest.raises(ValueError, match='not an mmdet3d v2 info file'):
        repeat_tool.main([str(tmp_path / 'v1.pkl'), out])
    with pytest.raises(ValueError, match='Van'):
        repeat_tool.main([ann, out, '--classes', 'Van'])
    with pytest.raises(ValueError, match='times must be >= 1'):
        repeat_tool.main([ann, out, '--times', '0'])


def read_kitti_lines(path):
    with open(path) as f:
        return [line.split() for line in f if line.strip()]


def test_submission_format_matches_the_label_files(kitti_infos_root, tmp_path):
    """format_only + submission_prefix with GT as predictions reproduces label_2's fields."""
    ann = osp.join(kitti_infos_root, 'kitti_infos_trainval.pkl')
    prefix = str(tmp_path / 'submission')
    metric = kitti_metric(ann, format_only=True, submission_prefix=prefix)
    assert metric.compute_metrics(gt_as_predictions(ann)) == {}
    files = sorted(os.listdir(osp.join(prefix, 'pred_instances_3d')))
    assert files == [f'{i:06d}.txt' for i in range(6)]
    for name in files:
        labels = [r for r in read_kitti_lines(osp.join(KITTI, 'label_2', name))
                  if r[0] in CLASSES]
        rows = read_kitti_lines(osp.join(prefix, 'pred_instances_3d', name))
        assert len(rows) == len(labels), name
        for row, label in zip(sorted(rows), sorted(labels)):
            # official result format: type trunc occl alpha x1 y1 x2 y2 h w l x y z ry score
            assert len(row) == 16 and row[0] == label[0]
            assert row[1:3] == ['-1', '-1']
            np.testing.assert_allclose(np.float64(row[8:15]), np.float64(label[8:15]),
                                       atol=0.011, err_msg=name)  # h w l x y z ry
            assert float(row[3]) == pytest.approx(float(label[3]), abs=0.02)  # alpha
            assert float(row[15]) == 1.0
            # 2D box: the projected 3D box, clipped to the image (close to the labelled one)
            np.testing.assert_allclose(np.float64(row[4:8]), np.float64(label[4:8]), atol=25)


def write_checkpoint(cfg_path, data_root, path):
    """An mmengine checkpoint of the config's freshly initialised model (seeded)."""
    from mmdet3d.registry import MODELS
    cfg = Config.fromfile(cfg_path)
    cfg.merge_from_dict(kitti_cfg_options(data_root))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize('cfg_path', CONFIGS, ids=osp.basename)
def test_submission_files_from_tools_test(cfg_path, kitti_infos_root, tmp_path):
    ckpt = write_checkpoint(cfg_path, kitti_infos_root, str(tmp_path / 'model.pth'))
    prefix = str(tmp_path / 'kitti_submission')
    options = dict(kitti_cfg_options(kitti_infos_root), **{
        'test_evaluator.format_only': True, 'test_evaluator.submission_prefix': prefix,
        'model.test_cfg.pts.score_thr': 0.0})  # an untrained model: keep its boxes
    run_tool([PYTHON, 'tools/test.py', cfg_path, ckpt, '--work-dir', str(tmp_path / 'work')]
             + as_cli_options(options))
    files = sorted(glob.glob(osp.join(prefix, 'pred_instances_3d', '*.txt')))
    assert [osp.basename(f) for f in files] == [f'{i:06d}.txt' for i in range(6)]
    rows = [r for f in files for r in read_kitti_lines(f)]
    assert rows, 'no detections written'
    for row in rows:
        assert len(row) == 16 and row[0] in CLASSES and row[1:3] == ['-1', '-1']
        x1, y1, x2, y2, h, w, l, _, _, z, ry, score = map(float, row[4:])
        # ry is wrapped to [-pi, pi]; mmdet3d's KittiMetric writes alpha = ry - atan2(..)
        # unwrapped, in [-2 pi, 2 pi] (the devkit only uses cos(alpha difference): harmless)
        assert abs(ry) <= np.pi + 1e-3 and abs(float(row[3])) <= 2 * np.pi + 1e-3
        assert 0 <= x1 <= x2 <= 1242 and 0 <= y1 <= y2 <= 375
        assert min(h, w, l) > 0 and 0 <= score <= 1
    with open(osp.join(str(tmp_path / 'work'), 'test_metrics.json')) as f:
        assert json.load(f) == {}  # format_only: files, no metrics


@pytest.mark.slow
@pytest.mark.parametrize('cfg_path', CONFIGS, ids=osp.basename)
def test_calib_robustness_tool_end_to_end(cfg_path, kitti_infos_root, tmp_path):
    ckpt = write_checkpoint(cfg_path, kitti_infos_root, str(tmp_path / 'model.pth'))
    out = str(tmp_path / 'calib')
    options = dict(kitti_cfg_options(kitti_infos_root), **{'model.test_cfg.pts.score_thr': 0.0})
    record = robustness_tool.main(
        [cfg_path, ckpt, '--rotations', '2', '--translations', '--rotation-axis', 'yaw',
         '--out', out, '--cfg-options'] + [f'{k}={v}' for k, v in options.items()])
    assert [row['name'] for row in record['levels']] == ['clean', 'rot2deg']
    assert record['levels'][1]['transform'] == dict(
        type='PerturbCalibration', rotation_deg=[0., 0., 2.], translation_cm=0., seed=0)
    for row in record['levels']:
        for key in robustness_tool.DEFAULT_METRIC_KEYS:
            value = robustness_tool.pick(row['metrics'], key)
            assert value is not None and 0.0 <= value <= 100.0, (key, sorted(row['metrics']))
    with open(osp.join(out, 'calib_robustness.json')) as f:
        assert json.load(f)['levels'][1]['rotation_deg'] == 2.0
    with open(osp.join(out, 'calib_robustness.md')) as f:
        table = f.read()
    assert '| level | rotation (deg) | translation (cm) | Car_3D_AP40_moderate_strict |' in table
    assert '| rot2deg | 2 | 0 |' in table
    assert osp.isdir(osp.join(out, 'rot2deg')) and osp.isdir(osp.join(out, 'clean'))


def test_robustness_levels_and_config(kitti_infos_root, tmp_path):
    args = robustness_tool.parse_args(['c.py', 'k.pth', '--rotations', '0.5', '1',
                                       '--translations', '10', '--seed', '7'])
    levels = robustness_tool.build_levels(args)
    assert list(levels) == ['clean', 'rot0.5deg', 'rot1deg', 'trans10cm']
    assert levels['rot1deg']['transform'] == dict(type='PerturbCalibration', rotation_deg=1.0,
                                                  translation_cm=0.0, seed=7)
    assert levels['clean']['transform'] is None
    grid = robustness_tool.build_levels(robustness_tool.parse_args(
        ['c.py', 'k.pth', '--rotations', '1', '--translations', '10', '--grid', '--no-clean']))
    assert list(grid) == ['trans10cm', 'rot1deg', 'rot1deg-trans10cm']
    fixed = robustness_tool.perturbation(1, 10, 'pitch', 'z')
    assert fixed['rotation_deg'] == [0., 1., 0.] and fixed['translation_cm'] == [0., 0., 10.]
    with pytest.raises(SystemExit):
        robustness_tool.parse_args(['c.py', 'k.pth', '--rotations', '-1'])

    # the transform goes right after image loading, before MultiScaleFlipAug3D and packing
    cfg = Config.fromfile(TINY_MVXNET_CFG)
    set_config = robustness_tool._eval_degradations().set_config
    level_cfg = set_config(cfg, 'rot1deg', levels['rot1deg']['transform'], 'k.pth',
                           str(tmp_path))
    types = [t['type'] for t in level_cfg.test_dataloader.dataset.pipeline]
    assert types == ['LoadPointsFromFile', 'LoadImageFromFile', 'PerturbCalibration',
                     'MultiScaleFlipAug3D', 'Pack3DDetInputs']
    assert robustness_tool.pick({'a/KITTI/Car_3D_AP40_moderate_strict': 3.0},
                                'Car_3D_AP40_moderate_strict') == 3.0
