"""Hooks, registered into ``mmengine.registry.HOOKS`` (seen from every scope)."""
from .norm_eval_hook import NormEvalHook
from .optimizer_reset_hook import OptimizerResetHook
from .random_state_hook import RandomStateHook

__all__ = ['NormEvalHook', 'OptimizerResetHook', 'RandomStateHook']
