"""NormEvalHook in mmengine's Runner: BatchNorm statistics frozen from the given iteration on."""
import pytest
import torch
from mmengine.model import BaseModel
from mmengine.registry import HOOKS
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mmfusion.engine import NormEvalHook


class _Points(Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, idx):
        g = torch.Generator().manual_seed(idx)
        return dict(inputs=torch.randn(3, generator=g) * 5 + 2)


class _BNRegressor(BaseModel):
    """Linear -> BatchNorm1d -> Linear; records each training forward's BN mode and stats."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.bn = nn.BatchNorm1d(4, momentum=0.5)
        self.head = nn.Linear(4, 1)
        self.log = []

    def forward(self, inputs, data_samples=None, mode='tensor'):
        self.log.append((self.bn.training, self.bn.running_mean.clone(),
                         self.bn.weight.detach().clone()))
        out = self.head(self.bn(self.fc(torch.stack(inputs))))
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


def _train(tmp_path, begin_iter):
    model = _BNRegressor()
    runner = Runner(
        model=model, work_dir=str(tmp_path),
        train_dataloader=DataLoader(_Points(), batch_size=2, collate_fn=lambda b: dict(
            inputs=[x['inputs'] for x in b])),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=3),
        custom_hooks=[dict(type='NormEvalHook', begin_iter=begin_iter)],
        default_hooks=dict(checkpoint=None, logger=None), env_cfg=dict(dist_cfg=dict()),
        default_scope='mmengine')
    runner.train()
    return model


def test_batchnorm_runs_on_running_statistics_from_begin_iter(tmp_path):
    model = _train(tmp_path, begin_iter=3)
    modes = [entry[0] for entry in model.log]
    # 3 epochs of 2 iterations; the runner calls model.train() at each epoch start, the hook
    # switches the BN layer back before every iteration from the 4th (index 3) on
    assert modes == [True, True, True, False, False, False]
    means = [entry[1] for entry in model.log] + [model.bn.running_mean]
    assert not torch.equal(means[2], means[3])  # iteration 2 still updated the estimate
    for later in means[4:]:
        assert torch.equal(later, means[3])  # frozen from iteration 3 on
    # the affine weight still trains in eval mode
    assert not torch.equal(model.log[3][2], model.bn.weight.detach())


def test_begin_iter_zero_freezes_from_the_start(tmp_path):
    model = _train(tmp_path, begin_iter=0)
    assert [entry[0] for entry in model.log] == [False] * 6
    assert torch.equal(model.bn.running_mean, torch.zeros(4))


def test_registered_and_validates():
    assert HOOKS.get('NormEvalHook') is NormEvalHook
    with pytest.raises(ValueError, match='begin_iter'):
        NormEvalHook(begin_iter=-1)
