"""Training-loop pieces mmengine lacks, host-neutral (registered into ``mmengine.registry``)."""
from .hooks.norm_eval_hook import NormEvalHook

__all__ = ['NormEvalHook']
