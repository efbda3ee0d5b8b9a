from .norm_eval_hook import NormEvalHook

__all__ = ['NormEvalHook']
