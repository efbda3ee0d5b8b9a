"""Helpers shared by the tests (mmdet3d's own `get_detector_cfg` works only in its checkout)."""
import importlib.util
import os
import os.path as osp
import subprocess
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_MVXNET_CFG = osp.join(REPO_ROOT, 'tests', 'data', 'configs', 'mvxnet_tiny_kitti-sample.py')
DEMO_MVXNET_CFG = osp.join(REPO_ROOT, 'configs', 'mvxnet',
                           'mvxnet_fpn_dv_second_secfpn_1xb2-demo_kitti-sample-3d-3class.py')


def load_tool(relpath, name):
    """Import a script under ``tools/`` by its path, as module ``name``.

    ``tools/`` is no package, and importing by name could pick up mmdet3d's ``.mim/tools``
    namespace package, which has scripts of the same names (``create_data.py``).

    Args:
        relpath (str): the script's path relative to the repository root.
        name (str): the module name to give it (unique per script).

    Returns:
        module: the executed script.
    """
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO_ROOT, relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kitti_cfg_options(data_root, ann_file='kitti_infos_trainval.pkl'):
    """``--cfg-options`` pointing the demo/tiny MVX-Net configs at converted KITTI infos.

    Returns:
        dict: key -> value, as ``Config.merge_from_dict`` takes it.
    """
    data_root = data_root.rstrip('/') + '/'
    return {
        'train_dataloader.dataset.dataset.data_root': data_root,
        'train_dataloader.dataset.dataset.ann_file': ann_file,
        'val_dataloader.dataset.data_root': data_root,
        'val_dataloader.dataset.ann_file': ann_file,
        'test_dataloader.dataset.data_root': data_root,
        'test_dataloader.dataset.ann_file': ann_file,
        'val_evaluator.ann_file': data_root + ann_file,
        'test_evaluator.ann_file': data_root + ann_file,
    }


def as_cli_options(options):
    """Turn a ``kitti_cfg_options`` dict into ``--cfg-options`` arguments."""
    return ['--cfg-options'] + [f'{k}={v}' for k, v in options.items()]


def run_tool(args, cwd=REPO_ROOT, timeout=900, env=None):
    """Run a command with the test interpreter's environment; return the CompletedProcess.

    Raises:
        AssertionError: With the tail of the output if the command fails.
    """
    full_env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
    proc = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, (
        f'{" ".join(map(str, args))} exited {proc.returncode}\n'
        f'--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-6000:]}')
    return proc


PYTHON = sys.executable
