"""Hooks, registered into ``mmengine.registry.HOOKS`` (seen from every scope)."""
from .norm_eval_hook import NormEvalHook

__all__ = ['NormEvalHook']
