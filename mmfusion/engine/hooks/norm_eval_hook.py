"""Switch BatchNorm layers to inference statistics for the last part of training."""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from torch.nn.modules.batchnorm import _BatchNorm


@HOOKS.register_module()
class NormEvalHook(Hook):
    """From training iteration ``begin_iter`` on, keep every BatchNorm layer in eval mode.

    In eval mode a BatchNorm layer normalises by its running mean and variance and no longer
    updates them; its affine weight and bias still train. So the network trained after
    ``begin_iter`` is the same function that runs at test time. This is mmdet's ``norm_eval=True``
    (ResNet), applied to the whole model from a given iteration: it is for training with batches
    too small for their statistics to stand for the data set, where a network fitted under batch
    statistics does not carry over to the running estimates (a use with figures:
    ``docs/runs/sslfusion_kitti_sample_overfit/``).

    Switch where the running estimates match the current weights: after a schedule has converged
    (a fine-tuning run from its checkpoint, ``begin_iter=0``), not while a high learning rate still
    moves the weights faster than the estimates follow; there the activations can blow up at the
    switch and training diverge.

    The runner puts the model back in training mode at every epoch start and after validation,
    so the switch is redone before every iteration.

    Args:
        begin_iter (int): the first training iteration (0-based, as ``runner.iter``) run with the
            BatchNorm layers in eval mode. Default: 0 (the whole training, e.g. fine-tuning).

    Raises:
        ValueError: if ``begin_iter`` is negative.
    """

    priority = 'NORMAL'

    def __init__(self, begin_iter: int = 0) -> None:
        if begin_iter < 0:
            raise ValueError(f'NormEvalHook: begin_iter must be >= 0, got {begin_iter}')
        self.begin_iter = begin_iter
        self._norms = None  # the model's BatchNorm layers, collected at the switch

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if runner.iter < self.begin_iter:
            return
        if self._norms is None:
            self._norms = [m for m in runner.model.modules() if isinstance(m, _BatchNorm)]
            runner.logger.info(f'NormEvalHook: {len(self._norms)} BatchNorm layers in eval mode '
                               f'from iteration {runner.iter} on')
        for m in self._norms:
            m.eval()
