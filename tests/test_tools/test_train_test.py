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


# --- bad inputs: one line naming the path, exit code 2; the traceback under --debug --------------

def run_failing(args, env=None):
    import os
    import subprocess

    from tests.utils import REPO_ROOT
    return subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1', **(env or {})))


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert all(f in lines[-1] for f in fragments), lines[-1]


def toy_config(tmp_path):
    from tests.test_engine.resume_toy import write_config
    cfg = str(tmp_path / 'toy.py')
    write_config(cfg, 'epoch', 0)
    return cfg


def toy_checkpoint(path, meta=None):
    import torch

    from tests.test_engine.resume_toy import ToyAugModel
    torch.save({'state_dict': ToyAugModel().state_dict(), 'meta': meta or {}}, path)
    return str(path)


def test_missing_config_is_one_line(tmp_path):
    missing = str(tmp_path / 'nope.py')
    assert_one_line_error(run_failing([PYTHON, 'tools/train.py', missing]), missing)
    debug = run_failing([PYTHON, 'tools/test.py', missing, 'x.pth'],
                        env={'MMFUSION_DEBUG': '1'})
    assert debug.returncode == 1 and 'Traceback' in debug.stderr


def test_debug_flag_shows_the_traceback(tmp_path):
    debug = run_failing([PYTHON, 'tools/train.py', str(tmp_path / 'nope.py'), '--debug'])
    assert debug.returncode == 1 and 'Traceback' in debug.stderr


def test_missing_data_root_is_one_line(tmp_path):
    cfg = toy_config(tmp_path)
    missing = str(tmp_path / 'no_data')
    proc = run_failing([PYTHON, 'tools/train.py', cfg, '--work-dir', str(tmp_path / 'w'),
                        '--cfg-options', f'train_dataloader.dataset.data_root={missing}'])
    assert_one_line_error(proc, missing, 'train_dataloader.dataset.data_root')


def test_missing_or_resume_checkpoint_is_one_line(tmp_path):
    cfg = toy_config(tmp_path)
    missing = str(tmp_path / 'none.pth')
    proc = run_failing([PYTHON, 'tools/test.py', cfg, missing, '--work-dir', str(tmp_path)])
    assert_one_line_error(proc, missing, 'does not exist')
    proc = run_failing([PYTHON, 'tools/train.py', cfg, '--resume', missing,
                        '--work-dir', str(tmp_path)])
    assert_one_line_error(proc, missing)


def test_corrupt_checkpoint_is_one_line(tmp_path):
    cfg = toy_config(tmp_path)
    ckpt = toy_checkpoint(tmp_path / 'bad.pth')
    with open(ckpt, 'rb') as f:
        data = f.read()
    with open(ckpt, 'wb') as f:
        f.write(data[:len(data) // 2])
    proc = run_failing([PYTHON, 'tools/test.py', cfg, ckpt, '--work-dir', str(tmp_path)])
    assert_one_line_error(proc, ckpt, 'not a readable checkpoint')


def test_unsafe_checkpoint_refused_unless_opted_in(tmp_path):
    import fractions
    import os.path as osp

    from tests.test_utils_compat import RunsCode
    cfg = toy_config(tmp_path)
    marker = str(tmp_path / 'code_ran')
    evil = toy_checkpoint(tmp_path / 'evil.pth', meta={'x': RunsCode(marker)})
    proc = run_failing([PYTHON, 'tools/test.py', cfg, evil, '--work-dir', str(tmp_path)])
    assert_one_line_error(proc, evil, 'posix.mkdir', '--unsafe-load')
    assert not osp.exists(marker)

    trusted = toy_checkpoint(tmp_path / 'trusted.pth', meta={'x': fractions.Fraction(1, 3)})
    proc = run_failing([PYTHON, 'tools/test.py', cfg, trusted, '--work-dir', str(tmp_path),
                        '--unsafe-load'])
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_unsafe_load_config_key(tmp_path):
    import fractions
    cfg = toy_config(tmp_path)
    trusted = toy_checkpoint(tmp_path / 'trusted.pth', meta={'x': fractions.Fraction(1, 3)})
    proc = run_failing([PYTHON, 'tools/test.py', cfg, trusted, '--work-dir', str(tmp_path),
                        '--cfg-options', 'unsafe_load=True'])
    assert proc.returncode == 0, proc.stderr[-3000:]
