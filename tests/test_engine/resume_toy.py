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
