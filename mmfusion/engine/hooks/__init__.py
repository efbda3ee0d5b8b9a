"""Hooks, registered into ``mmengine.registry.HOOKS`` (seen from every scope)."""
from .norm_eval_hook import NormEvalHook
from .optimizer_reset_hook import OptimizerResetHook

__all__ = ['NormEvalHook', 'OptimizerResetHook']
