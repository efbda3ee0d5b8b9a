"""mmfusion.utils.compat: Runner checkpoints load with weights_only=True, unsafe pickles are
refused; stock ObjectSample runs."""
import fractions
import os
import os.path as osp
import pickle

import numpy as np
import pytest
import torch

from mmfusion.utils.compat import (CorruptCheckpointError, UnsafeCheckpointError,
                                   allow_unsafe_checkpoints, restore_mmengine_checkpoint_loading,
                                   restore_numpy_long)


class RunsCode:
    """Unpickling this calls ``os.mkdir(marker)``: stands for any code a pickle can run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


@pytest.fixture
def safe_loading():
    restore_mmengine_checkpoint_loading()
    restore_mmengine_checkpoint_loading()  # idempotent
    allow_unsafe_checkpoints(False)
    yield
    allow_unsafe_checkpoints(False)


def toy_runner(work_dir, **kwargs):
    from mmengine.runner import Runner
    from torch.utils.data import Dataset

    class Pairs(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return dict(inputs=torch.full((2,), float(i)), target=torch.tensor(float(i)))

    from mmengine.model import BaseModel

    class Linear(BaseModel):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2, 1)

        def forward(self, inputs, target, mode='loss'):
            return dict(loss=((self.fc(inputs).squeeze(1) - target) ** 2).mean())

    return Runner(
        model=Linear(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=Pairs(), sampler=dict(type='DefaultSampler', shuffle=True),
                              batch_size=2, num_workers=0,
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        param_scheduler=dict(type='MultiStepLR', milestones=[1]),
        train_cfg=dict(by_epoch=True, max_epochs=1), randomness=dict(seed=0),
        default_hooks=dict(logger=None), **kwargs)


def test_runner_checkpoint_loads_and_resumes_weights_only(tmp_path, safe_loading):
    from mmengine.runner.checkpoint import _load_checkpoint
    runner = toy_runner(tmp_path / 'a')
    runner.train()
    ckpt = str(tmp_path / 'a' / 'epoch_1.pth')
    # every global of the file is allow-listed: it loads without full pickle
    assert torch.serialization.get_unsafe_globals_in_checkpoint(ckpt) == []
    loaded = _load_checkpoint(ckpt, map_location='cpu')
    assert 'message_hub' in loaded and 'optimizer' in loaded
    assert loaded['message_hub']['log_scalars']['train/loss'].current() > 0

    resumed = toy_runner(tmp_path / 'b', resume=True, load_from=ckpt)
    resumed._train_loop = resumed.build_train_loop(resumed._train_loop)
    resumed.optim_wrapper = resumed.build_optim_wrapper(resumed.optim_wrapper)
    resumed.param_schedulers = resumed.build_param_scheduler(resumed.param_schedulers)
    resumed.load_or_resume()
    assert resumed.epoch == 1
    assert torch.equal(resumed.model.fc.weight, runner.model.fc.weight)


def test_message_hub_objects_load(tmp_path, safe_loading):
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import load_checkpoint, save_checkpoint
    model = torch.nn.Linear(3, 2)
    buffer = HistoryBuffer()
    buffer.update(np.float64(1.5))
    ckpt = str(tmp_path / 'epoch_1.pth')
    save_checkpoint({'state_dict': model.state_dict(),
                     'message_hub': {'log_scalars': {'loss': buffer}},
                     'meta': {'seed': np.int64(3), 'arr': np.zeros(2, np.float32)}}, ckpt)
    other = torch.nn.Linear(3, 2)
    loaded = load_checkpoint(other, ckpt, map_location='cpu')
    assert torch.equal(other.weight, model.weight)
    assert loaded['message_hub']['log_scalars']['loss'].current() == 1.5
    assert loaded['meta']['arr'].dtype == np.float32


def test_checkpoint_that_would_run_code_is_refused(tmp_path, safe_loading):
    from mmengine.runner.checkpoint import _load_checkpoint
    marker = str(tmp_path / 'code_ran')
    ckpt = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'meta': RunsCode(marker)}, ckpt)
    with pytest.raises(UnsafeCheckpointError) as info:
        _load_checkpoint(ckpt, map_location='cpu')
    assert not osp.exists(marker)  # nothing executed
    message = str(info.value)
    assert ckpt in message and 'posix.mkdir' in message and '--unsafe-load' in message
    assert info.value.globals == ['posix.mkdir']


def test_getattr_only_reaches_history_buffer_methods(tmp_path, safe_loading):
    """``builtins.getattr`` is allowed for HistoryBuffer's statistics methods, nothing else."""
    from mmengine.runner.checkpoint import _load_checkpoint

    class GetattrEscape:
        def __reduce__(self):
            return getattr, (np.ndarray, '__class__')

    ckpt = str(tmp_path / 'getattr.pth')
    torch.save({'meta': GetattrEscape()}, ckpt)
    with pytest.raises(UnsafeCheckpointError, match='getattr'):
        _load_checkpoint(ckpt, map_location='cpu')


def test_unsafe_load_is_an_explicit_opt_in(tmp_path, safe_loading):
    from mmengine.runner.checkpoint import _load_checkpoint
    ckpt = str(tmp_path / 'fraction.pth')
    torch.save({'meta': fractions.Fraction(1, 3)}, ckpt)
    with pytest.raises(UnsafeCheckpointError, match='fractions.Fraction'):
        _load_checkpoint(ckpt, map_location='cpu')
    allow_unsafe_checkpoints(True)
    assert _load_checkpoint(ckpt, map_location='cpu')['meta'] == fractions.Fraction(1, 3)


@pytest.mark.parametrize('content', [b'', b'not a checkpoint', 'truncated'])
def test_corrupt_checkpoint_names_the_file(tmp_path, safe_loading, content):
    from mmengine.runner.checkpoint import _load_checkpoint
    ckpt = str(tmp_path / 'bad.pth')
    if content == 'truncated':
        torch.save({'state_dict': {'w': torch.zeros(100)}}, ckpt)
        with open(ckpt, 'rb') as f:
            content = f.read()[:300]
    with open(ckpt, 'wb') as f:
        f.write(content)
    with pytest.raises(CorruptCheckpointError) as info:
        _load_checkpoint(ckpt, map_location='cpu')
    assert str(info.value).startswith(f'{ckpt}: not a readable checkpoint')


def test_unsafe_error_is_an_unpickling_error(tmp_path):
    assert issubclass(UnsafeCheckpointError, pickle.UnpicklingError)


def test_np_long_for_stock_object_sample():
    restore_numpy_long()
    assert np.array([1.7]).astype(np.long).dtype == np.int_
