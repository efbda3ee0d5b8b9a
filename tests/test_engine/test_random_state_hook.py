"""RandomStateHook: a run killed (SIGKILL) after a checkpoint and resumed ends bit-identical."""
import os
import os.path as osp
import random
import socket
import subprocess

import numpy as np
import pytest
import torch

from mmfusion.engine.hooks.random_state_hook import (RandomStateHook, get_random_states,
                                                     set_random_states)
from mmfusion.utils.compat import load_from_local
from tests.test_engine.resume_toy import KILL_ENV, write_config
from tests.utils import PYTHON, REPO_ROOT


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def train(cfg, work_dir, nproc, extra=(), kill_at=None):
    """Run tools/train.py (``nproc`` gloo ranks); return the process."""
    env = {'OMP_NUM_THREADS': '1', KILL_ENV: str(kill_at) if kill_at else ''}
    if nproc == 1:
        args = [PYTHON, 'tools/train.py', cfg, '--work-dir', work_dir]
    else:
        args = [PYTHON, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
                f'--master_port={free_port()}', 'tools/train.py', cfg, '--work-dir', work_dir,
                '--launcher', 'pytorch']
    proc = subprocess.run(args + list(extra), cwd=REPO_ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONUNBUFFERED='1', **env), timeout=600)
    return proc


def final_weights(work_dir, name):
    ckpt = load_from_local(osp.join(work_dir, name), map_location='cpu')  # weights_only=True
    return ckpt['state_dict']


def killed_and_resumed_equals_uninterrupted(tmp_path, loop, num_workers, nproc, hook=True):
    cfg = str(tmp_path / f'toy_{loop}.py')
    write_config(cfg, loop, num_workers, hook=hook)
    final = 'epoch_4.pth' if loop == 'epoch' else 'iter_12.pth'
    kill_at = 2 if loop == 'epoch' else 4
    straight = str(tmp_path / 'straight')
    proc = train(cfg, straight, nproc)
    assert proc.returncode == 0, proc.stderr[-4000:]

    resumed = str(tmp_path / 'resumed')
    proc = train(cfg, resumed, nproc, kill_at=kill_at)
    assert proc.returncode != 0  # killed
    ckpt = 'epoch_2.pth' if loop == 'epoch' else 'iter_4.pth'
    assert osp.isfile(osp.join(resumed, ckpt))
    assert not osp.exists(osp.join(resumed, final))
    proc = train(cfg, resumed, nproc, extra=['--resume'])
    assert proc.returncode == 0, proc.stderr[-4000:]

    a, b = final_weights(straight, final), final_weights(resumed, final)
    assert a.keys() == b.keys()
    return all(torch.equal(a[k], b[k]) for k in a)


def test_random_states_round_trip_and_load_weights_only(tmp_path):
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    states = get_random_states()
    expected = (random.random(), np.random.rand(), torch.rand(1))
    path = str(tmp_path / 'states.pth')
    torch.save({'random_states': [states]}, path)
    random.random(), np.random.rand(), torch.rand(1)
    set_random_states(torch.load(path, weights_only=True)['random_states'][0])
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(1), expected[2])


def test_hook_is_registered():
    from mmengine.registry import HOOKS
    assert HOOKS.get('RandomStateHook') is RandomStateHook


@pytest.mark.parametrize('loop,num_workers', [
    pytest.param('epoch', 2, marks=pytest.mark.slow),  # persistent workers, restarted per epoch
    ('iter', 0),  # augmentation in the main process, replayed by mmengine's skip
])
def test_kill_and_resume_is_bit_exact_one_process(tmp_path, loop, num_workers):
    assert killed_and_resumed_equals_uninterrupted(tmp_path, loop, num_workers, nproc=1)


@pytest.mark.slow
def test_without_the_hook_resume_differs(tmp_path):
    """The control: stock mmengine restores only the seed, so the augmentation diverges."""
    assert not killed_and_resumed_equals_uninterrupted(tmp_path, 'epoch', 0, nproc=1, hook=False)


@pytest.mark.slow
@pytest.mark.parametrize('loop,num_workers', [('epoch', 1), ('iter', 0)])
def test_kill_and_resume_is_bit_exact_two_gloo_processes(tmp_path, loop, num_workers):
    assert killed_and_resumed_equals_uninterrupted(tmp_path, loop, num_workers, nproc=2)
