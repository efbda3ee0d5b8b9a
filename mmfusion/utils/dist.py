"""Launcher set-up that lets mmengine's distributed training run on machines without CUDA.

mmengine 0.10.7's ``init_dist('pytorch', ...)`` calls ``torch.cuda.set_device(local_rank)``
before initialising the process group, which raises ``AttributeError`` on a CPU build of torch,
and its Runner wraps the model in ``MMDistributedDataParallel(device_ids=[LOCAL_RANK])``, which
torch's DDP refuses for a CPU module. On such machines this module initialises the process
group itself with the gloo backend (``env://``: the variables ``torchrun`` sets), after which
the Runner finds the group initialised and skips ``init_dist``, and it sets
``model_wrapper_cfg.device_ids=None``. The group it creates is destroyed at interpreter exit:
mmengine never destroys it, and a gloo group still alive during interpreter shutdown aborted a
rank here ("terminate called without an active exception", SIGABRT) after training had finished.
With CUDA present nothing is changed.
"""
import atexit
from datetime import timedelta

import torch
import torch.distributed as dist


def _destroy_process_group():
    if dist.is_initialized():
        dist.destroy_process_group()


def setup_distributed(cfg):
    """Prepare ``cfg`` (an mmengine ``Config`` with ``launcher`` set) for a CPU launcher run.

    Args:
        cfg (mmengine.Config): The run's config; ``cfg.launcher`` is one of ``'none'``,
            ``'pytorch'``, ``'slurm'``, ``'mpi'``. ``cfg.env_cfg.dist_cfg.timeout`` (seconds)
            is honoured if set.

    Raises:
        RuntimeError: For ``slurm``/``mpi`` launchers on a machine without CUDA (only
            ``pytorch``, i.e. ``torchrun`` / ``tools/dist_train.sh``, is supported there).
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise RuntimeError(f'launcher {launcher!r} needs CUDA; on CPU use --launcher pytorch '
                           '(tools/dist_train.sh), which trains with the gloo backend')
    if not dist.is_initialized():
        dist_cfg = cfg.get('env_cfg', {}).get('dist_cfg', {}) or {}
        kwargs = {}
        if dist_cfg.get('timeout') is not None:
            kwargs['timeout'] = timedelta(seconds=dist_cfg['timeout'])
        dist.init_process_group(backend='gloo', init_method='env://', **kwargs)
        atexit.register(_destroy_process_group)
    wrapper = dict(cfg.get('model_wrapper_cfg', None) or dict(type='MMDistributedDataParallel'))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
