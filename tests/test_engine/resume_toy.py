"""A small training setup with random augmentation and dropout, for the kill-and-resume tests.

Registered into mmengine's root registries; a config loads it with
``custom_imports = dict(imports=['tests.test_engine.resume_toy'])``. The randomness covers the
three generators a run uses: NumPy (mmcv's stock ``RandomFlip`` and ``RandomGrayscale``), Python
(``ToyPack`` adds ``random.gauss`` noise to the target) and torch (dropout in ``ToyAugModel``).
"""
import os
import random
import signal

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset
from mmengine.dist import barrier
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, HOOKS, METRICS, MODELS, TRANSFORMS
from torch import nn

KILL_ENV = 'MMFUSION_TEST_KILL_AT'


@DATASETS.register_module()
class ToyAugDataset(BaseDataset):
    """12 fixed 8x8 RGB images (uint8) with a scalar target each."""

    def __init__(self, num_samples=12, **kwargs):
        self.num_samples = num_samples
        super().__init__(**kwargs)

    def load_data_list(self):
        rng = np.random.RandomState(0)
        return [dict(img=rng.randint(0, 256, (8, 8, 3)).astype(np.uint8), target=float(i))
                for i in range(self.num_samples)]


@TRANSFORMS.register_module()
class ToyPack(BaseTransform):
    """HWC uint8 image -> CHW float tensor; target plus ``random.gauss(0, 0.1)`` noise."""

    def transform(self, results):
        img = torch.from_numpy(np.ascontiguousarray(results['img'])).permute(2, 0, 1).float()
        return dict(inputs=img / 255.0,
                    target=torch.tensor(results['target'] + random.gauss(0, 0.1)))


@MODELS.register_module()
class ToyAugModel(BaseModel):
    """conv -> dropout(0.5) -> linear, regressing the target (mean squared error)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4 * 6 * 6, 1)

    def forward(self, inputs, target, mode='loss'):
        pred = self.fc(self.drop(torch.relu(self.conv(inputs))).flatten(1)).squeeze(1)
        if mode == 'loss':
            return dict(loss=((pred - target) ** 2).mean())
        return [dict(pred=p, target=t) for p, t in zip(pred, target)]


@METRICS.register_module()
class ToyMSE(BaseMetric):

    def process(self, data_batch, data_samples):
        self.results.extend(float((s['pred'] - s['target']) ** 2) for s in data_samples)

    def compute_metrics(self, results):
        return dict(mse=float(np.mean(results)))


@HOOKS.register_module()
class KillAfterCheckpointHook(Hook):
    """SIGKILL every rank right after the checkpoint of epoch/iteration ``$MMFUSION_TEST_KILL_AT``.

    Runs after CheckpointHook (priority LOWEST); ranks wait for rank 0's file first.
    """

    priority = 'LOWEST'

    def _maybe_kill(self, runner, count):
        if os.environ.get(KILL_ENV) == str(count):
            barrier()
            os.kill(os.getpid(), signal.SIGKILL)

    def after_train_epoch(self, runner):
        if runner.train_loop.__class__.__name__ == 'EpochBasedTrainLoop':
            self._maybe_kill(runner, runner.epoch + 1)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.train_loop.__class__.__name__ == 'IterBasedTrainLoop':
            self._maybe_kill(runner, runner.iter + 1)


PIPELINE = [
    dict(type='mmcv.RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='mmcv.RandomGrayscale', prob=0.3, keep_channels=True),
    dict(type='ToyPack'),
]


def write_config(path, loop, num_workers, hook=True):
    """Write a toy config: 12 samples, batch 2, validation every epoch / 3 iterations."""
    by_epoch = loop == 'epoch'
    sampler = 'DefaultSampler' if by_epoch else 'InfiniteSampler'
    train_cfg = (dict(type='EpochBasedTrainLoop', max_epochs=4, val_interval=1) if by_epoch
                 else dict(type='IterBasedTrainLoop', max_iters=12, val_interval=3))
    hooks = [dict(type='KillAfterCheckpointHook')]
    if hook:
        hooks.insert(0, dict(type='RandomStateHook'))
    cfg = dict(
        custom_imports=dict(imports=['tests.test_engine.resume_toy',
                                     'mmfusion.engine.hooks.random_state_hook'],
                            allow_failed_imports=False),
        model=dict(type='ToyAugModel'),
        train_dataloader=dict(
            batch_size=2, num_workers=num_workers, persistent_workers=num_workers > 0,
            sampler=dict(type=sampler, shuffle=True), collate_fn=dict(type='default_collate'),
            dataset=dict(type='ToyAugDataset', pipeline=PIPELINE)),
        val_dataloader=dict(
            batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            dataset=dict(type='ToyAugDataset', pipeline=[dict(type='ToyPack')])),
        val_evaluator=dict(type='ToyMSE'),
        val_cfg=dict(type='ValLoop'),
        train_cfg=train_cfg,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1 if by_epoch else 4,
                            by_epoch=by_epoch),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=hooks,
        randomness=dict(seed=0),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        log_level='WARNING',
        test_dataloader=dict(
            batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            dataset=dict(type='ToyAugDataset', pipeline=[dict(type='ToyPack')])),
        test_evaluator=dict(type='ToyMSE'),
        test_cfg=dict(type='TestLoop'),
    )
    with open(path, 'w') as f:
        for key, value in cfg.items():
            f.write(f'{key} = {value!r}\n')
