"""OpenMMLab's ``mim`` finds an installed mmfusion (``mim list``) and trains one of its configs
(``mim train mmfusion CONFIG``) through the packaged ``.mim/tools/train.py``.

mim locates a package through its installed location, which a PEP 660 editable install (the
development set-up) does not give, so the test installs mmfusion as a user would (a regular,
non-editable install) into a temporary folder and puts it first on ``PYTHONPATH``.
"""
import glob
import os
import os.path as osp
import shutil

import pytest

from tests.inference_fixtures import paired_cfg_options
from tests.utils import PYTHON, REPO_ROOT, as_cli_options, run_tool

MIM = osp.join(osp.dirname(PYTHON), 'mim')
CONFIG = 'projects/DAMF/configs/damf-stage0_vit-tiny-detr_1xb2-300e_llvip-sample.py'


@pytest.mark.slow
@pytest.mark.skipif(not osp.exists(MIM), reason='openmim is not installed')
def test_mim_lists_and_trains_mmfusion(tmp_path, llvip_infos):
    build = tmp_path / 'src'
    # a clean copy of the sources, so that building the wheel leaves the checkout untouched
    shutil.copytree(REPO_ROOT, build, ignore=shutil.ignore_patterns(
        '.git', '.venv', 'work_dirs', '__pycache__', '.mim', 'data'))
    target = tmp_path / 'site'
    run_tool([PYTHON, '-m', 'pip', 'install', '--no-deps', '--no-build-isolation', '--target',
              str(target), str(build)], cwd=str(tmp_path))
    assert osp.isfile(target / 'mmfusion' / '.mim' / 'model-index.yml')
    env = dict(PYTHONPATH=f'{target}{os.pathsep}{os.environ.get("PYTHONPATH", "")}')

    listed = run_tool([MIM, 'list'], cwd=str(tmp_path), env=env).stdout
    assert any(line.split()[:2] == ['mmfusion', '0.1.0'] for line in listed.splitlines())

    work_dir = tmp_path / 'work'
    options = dict(paired_cfg_options(llvip_infos['test']),
                   **{'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 10})
    run_tool([MIM, 'train', 'mmfusion', osp.join(REPO_ROOT, CONFIG), '--launcher', 'none',
              '--work-dir', str(work_dir)] + as_cli_options(options), cwd=str(tmp_path), env=env)
    assert glob.glob(str(work_dir / 'epoch_1.pth'))
