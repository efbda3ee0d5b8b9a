"""Training-loop pieces mmengine lacks, host-neutral (registered into ``mmengine.registry``)."""
from .hooks.norm_eval_hook import NormEvalHook
from .hooks.random_state_hook import RandomStateHook

__all__ = ['NormEvalHook', 'RandomStateHook']
