"""OptimizerResetHook: registration and argument checks (the behaviour in a real three-stage
run is tested with the GeminiFusion paper config in tests/test_models/test_gemini_segmentation.py).
"""
import pytest
import torch
from mmengine.registry import HOOKS

from mmfusion.engine import OptimizerResetHook


class _Runner:
    """The two attributes the hook reads."""

    def __init__(self, optimizer, it):
        self.optim_wrapper = type('W', (), {'optimizer': optimizer})()
        self.iter = it
        self.logger = type('L', (), {'info': staticmethod(lambda msg: None)})()


def test_clears_adamw_state_only_at_the_given_iterations():
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([param], lr=0.1, weight_decay=0.01)
    hook = OptimizerResetHook(reset_iters=[2])
    steps = []
    for it in range(4):
        hook.before_train_iter(_Runner(optimizer, it), batch_idx=it)
        param.grad = torch.full((3, ), 1.0)
        optimizer.step()
        steps.append(int(optimizer.state[param]['step']))
    assert steps == [1, 2, 1, 2]
    assert optimizer.param_groups[0]['lr'] == 0.1 and optimizer.param_groups[0]['weight_decay']


def test_registered_and_validates():
    assert HOOKS.get('OptimizerResetHook') is OptimizerResetHook
    for bad in ([0], [-3], [2, 2], [1.5]):
        with pytest.raises(ValueError, match='reset_iters'):
            OptimizerResetHook(reset_iters=bad)
