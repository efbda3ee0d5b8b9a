"""Training-loop pieces mmengine lacks, host-neutral (registered into ``mmengine.registry``)."""
from .hooks.norm_eval_hook import NormEvalHook
from .hooks.optimizer_reset_hook import OptimizerResetHook
from .hooks.random_state_hook import RandomStateHook
from .optimizers.yolov5_optim_wrapper_constructor import YOLOv5OptimWrapperConstructor

__all__ = [
    'NormEvalHook', 'OptimizerResetHook', 'RandomStateHook', 'YOLOv5OptimWrapperConstructor'
]
