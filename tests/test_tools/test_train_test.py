"""tools/train.py, tools/test.py and tools/dist_train.sh on the real KITTI sample, on CPU."""
import glob
import json
import os.path as osp
import socket

from tests.utils import PYTHON, TINY_MVXNET_CFG, as_cli_options, kitti_cfg_options, run_tool


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_train_then_test_with_kitti_metric_and_pictures(kitti_infos_root, tmp_path):
    work_dir = str(tmp_path / 'work')
    options = dict(kitti_cfg_options(kitti_infos_root), **{'train_cfg.max_epochs': 1})
    run_tool([PYTHON, 'tools/train.py', TINY_MVXNET_CFG, '--work-dir', work_dir]
             + as_cli_options(options))
    ckpt = osp.join(work_dir, 'epoch_1.pth')
    assert osp.isfile(ckpt)

    show_dir = str(tmp_path / 'show')
    # the 3-iteration model scores below the head's 0.1 threshold; the hook draws nothing for a
    # frame without boxes, so keep every box after NMS
    options['model.test_cfg.pts.score_thr'] = 0.0
    run_tool([PYTHON, 'tools/test.py', TINY_MVXNET_CFG, ckpt, '--work-dir', work_dir,
              '--show-dir', show_dir, '--score-thr', '0.0'] + as_cli_options(options))
    with open(osp.join(work_dir, 'test_metrics.json')) as f:
        metrics = json.load(f)
    # KittiMetric reports 3D / BEV / 2D AP at R11 and R40 for every class and difficulty
    for key in ('Car_3D_AP11_moderate_strict', 'Car_BEV_AP40_easy_strict',
                'Pedestrian_3D_AP40_hard_strict', 'Cyclist_2D_AP11_moderate_strict'):
        key = 'Kitti metric/pred_instances_3d/KITTI/' + key
        assert key in metrics, sorted(metrics)
        assert 0.0 <= metrics[key] <= 100.0
    pictures = glob.glob(osp.join(show_dir, '**', '*.png'), recursive=True)
    assert len(pictures) == 6, pictures


def test_dist_train_two_processes_on_cpu(kitti_infos_root, tmp_path):
    """Two ranks over gloo train one epoch; one checkpoint is written and both ranks finish."""
    work_dir = str(tmp_path / 'dist')
    options = dict(kitti_cfg_options(kitti_infos_root), **{'train_cfg.max_epochs': 1})
    proc = run_tool(['bash', 'tools/dist_train.sh', TINY_MVXNET_CFG, '2', '--work-dir', work_dir]
                    + as_cli_options(options),
                    env={'PYTHON': PYTHON, 'PORT': str(free_port()), 'OMP_NUM_THREADS': '1'})
    assert glob.glob(osp.join(work_dir, '*.pth')) == [osp.join(work_dir, 'epoch_1.pth')]
    logs = glob.glob(osp.join(work_dir, '*', '*.log'))
    assert len(logs) == 1
    with open(logs[0]) as f:
        log = f.read()
    assert 'Distributed training: True' in log
    assert "'world_size': 2" in log or 'world_size: 2' in log or 'GPU number: 2' in log
    # 6 frames, 2 ranks x batch 2 -> 2 iterations per epoch, logged by rank 0
    assert 'Epoch(train) [1][2/2]' in log
    assert proc.returncode == 0
