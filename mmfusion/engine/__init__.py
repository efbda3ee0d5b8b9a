"""Training-loop pieces mmengine lacks (registered into ``mmengine.registry.HOOKS``)."""
from .hooks import NormEvalHook

__all__ = ['NormEvalHook']
