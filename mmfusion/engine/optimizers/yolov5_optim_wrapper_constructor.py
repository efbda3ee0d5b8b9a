"""YOLOv5's three optimizer parameter groups, as an mmengine optimizer wrapper constructor.

Source: the optimizer set-up of YOLOv5's ``train.py``, which the official Fusion-Mamba code
(github.com/EhanDong/Fusion-Mamba, ``train.py``) keeps unchanged. It walks the model's modules
(not its parameters) and collects

=====  ====================================================  ===============================
group  parameters                                            weight decay
=====  ====================================================  ===============================
0      ``weight`` of every BatchNorm layer                   none
1      ``weight`` of every other module that has one         ``optimizer.weight_decay``
       (convolutions, linear layers, LayerNorm, ...)
2      ``bias`` of every module that has one                 none
=====  ====================================================  ===============================

A parameter that is not a module's ``weight`` or ``bias`` attribute is in no group and is never
updated. In the Fusion-Mamba model these are the selective-scan parameters of every SS2D
(``x_proj_weight``, ``dt_projs_weight``, ``dt_projs_bias``, ``A_logs``, ``Ds``): the official
recipe trains the FMBs with them frozen at their initialisation, and decays LayerNorm weights.
This constructor reproduces that recipe; mmengine's ``DefaultOptimWrapperConstructor`` with a
``paramwise_cfg`` trains every parameter instead.

Differences from the official code: "BatchNorm" is every ``torch.nn.modules.batchnorm._BatchNorm``
(the official check is ``nn.BatchNorm2d``; the models it builds have no other BatchNorm type,
while here ``SyncBatchNorm`` may replace them in distributed training); a parameter reachable
from two modules is put in the group where it is met first (the official code would raise).
"""
from typing import Dict, List, Optional

from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ['YOLOv5OptimWrapperConstructor', 'yolov5_param_groups']


def yolov5_param_groups(model: nn.Module) -> Dict[str, List[nn.Parameter]]:
    """Split ``model``'s module weights and biases into YOLOv5's three groups.

    Args:
        model (nn.Module): The model (a wrapper's ``.module`` is not unwrapped here).

    Returns:
        dict: ``{'norm_weights': [...], 'weights': [...], 'biases': [...]}`` in module order;
        parameters that are no module's ``weight``/``bias`` attribute are in none of them.
    """
    groups = {'norm_weights': [], 'weights': [], 'biases': []}
    seen = set()

    def add(group: str, param) -> None:
        if isinstance(param, nn.Parameter) and id(param) not in seen:
            seen.add(id(param))
            groups[group].append(param)

    for module in model.modules():
        add('biases', getattr(module, 'bias', None))
        if isinstance(module, _BatchNorm):
            add('norm_weights', module.weight)
        else:
            add('weights', getattr(module, 'weight', None))
    return groups


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class YOLOv5OptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Build an optimizer over YOLOv5's three parameter groups (see the module docstring).

    Config::

        optim_wrapper = dict(
            type='OptimWrapper',
            constructor='YOLOv5OptimWrapperConstructor',
            optimizer=dict(type='SGD', lr=0.01, momentum=0.937, weight_decay=5e-4,
                           nesterov=True))

    ``weight_decay`` applies to group 1 only; groups 0 and 2 get weight decay 0; every other
    optimizer argument (lr, momentum, ...) is shared by the three groups, in the order
    BatchNorm weights, weights, biases (an empty group is left out).

    Args:
        optim_wrapper_cfg (dict): The ``optim_wrapper`` config (``optimizer`` required).
        paramwise_cfg (dict, optional): Must be empty: the groups are fixed.

    Raises:
        ValueError: If a ``paramwise_cfg`` is given (it would be silently ignored).
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        if paramwise_cfg:
            raise ValueError(
                'YOLOv5OptimWrapperConstructor: the parameter groups are fixed (BatchNorm '
                f'weights, weights, biases); remove paramwise_cfg={paramwise_cfg}')
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def __call__(self, model: nn.Module) -> OptimWrapper:
        """Build the optimizer wrapper for ``model`` (unwrapped from a DDP ``.module``)."""
        if hasattr(model, 'module'):
            model = model.module
        groups = yolov5_param_groups(model)
        optimizer_cfg = self.optimizer_cfg.copy()
        weight_decay = optimizer_cfg.pop('weight_decay', 0.0)
        decays = {'norm_weights': 0.0, 'weights': weight_decay, 'biases': 0.0}
        optimizer_cfg['params'] = [
            dict(params=groups[name], weight_decay=decay) for name, decay in decays.items()
            if groups[name]
        ]
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        optim_wrapper_cfg = self.optim_wrapper_cfg.copy()
        optim_wrapper_cfg.setdefault('type', 'OptimWrapper')
        return OPTIM_WRAPPERS.build(optim_wrapper_cfg, default_args=dict(optimizer=optimizer))
