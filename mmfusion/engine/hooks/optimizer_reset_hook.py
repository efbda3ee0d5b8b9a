"""Start a fresh optimizer state at given training iterations (multi-stage schedules)."""
from typing import Sequence

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class OptimizerResetHook(Hook):
    """Clear the optimizer's per-parameter state before the given training iterations.

    For a schedule made of stages that each start a new optimizer, as GeminiFusion's official
    ``main.py`` does (a new ``PolyWarmupAdamW`` per stage, after TokenFusion): for AdamW the
    cleared state is each parameter's first and second moment estimates and its step count, so
    the first step of a stage is the first step of a new AdamW (bias correction included). The
    parameter groups and their hyper-parameters (lr, weight decay) are kept; the learning rate of
    each stage comes from the param schedulers, as before.

    Args:
        reset_iters (Sequence[int]): Training iterations (0-based, as ``runner.iter``) before
            which the state is cleared, e.g. ``[13200, 26400]`` for three stages of 13,200
            iterations. Resuming from a checkpoint inside a stage keeps the loaded state.

    Raises:
        ValueError: If an iteration is not a positive integer (iteration 0 already starts
            with an empty state) or the list has duplicates.
    """

    priority = 'NORMAL'

    def __init__(self, reset_iters: Sequence[int]) -> None:
        iters = list(reset_iters)
        if any(not isinstance(i, int) or i <= 0 for i in iters) or len(set(iters)) != len(iters):
            raise ValueError('OptimizerResetHook: reset_iters must be distinct positive '
                             f'integers, got {reset_iters}')
        self.reset_iters = frozenset(iters)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if runner.iter not in self.reset_iters:
            return
        optimizer = runner.optim_wrapper.optimizer
        optimizer.state.clear()
        runner.logger.info(f'OptimizerResetHook: optimizer state cleared before iteration '
                           f'{runner.iter} (new stage)')
