"""Compatibility of the pinned OpenMMLab releases with the newer torch and numpy installed here.

Two defects of the stock stack, each fixed at the narrowest point (both idempotent):

1. mmengine 0.10.7 loads local checkpoints with ``torch.load(filename, map_location)``. Since
   torch 2.6 that means ``weights_only=True``, and every checkpoint mmengine writes stores its
   message hub (numpy scalars and arrays, ``mmengine.logging.HistoryBuffer``, and
   ``builtins.getattr`` from numpy's pickles), so ``tools/test.py``, ``--resume`` and
   ``load_from`` fail with "Weights only load failed". :func:`restore_mmengine_checkpoint_loading`
   re-registers mmengine's local-file loader with ``weights_only=False``: the behaviour mmengine
   was written for. As with any pickle, load only checkpoints you trust.
2. mmdet3d 1.4.0's ``DataBaseSampler.sample_all`` (the stock ``ObjectSample`` GT-paste
   augmentation of most KITTI configs) uses ``np.long``, removed in numpy 1.24 (mmdetection3d
   issue 2821); ``numpy<2`` is pinned here for nuscenes-devkit. :func:`restore_numpy_long` defines
   it as ``np.int_``, its meaning in numpy 2 (C long, int64 on Linux).
"""
import os.path as osp

import numpy as np
import torch


def _load_from_local(filename, map_location=None):
    """mmengine's ``load_from_local`` with the pre-torch-2.6 ``weights_only=False``.

    Raises:
        FileNotFoundError: If ``filename`` is not a file.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)


def restore_mmengine_checkpoint_loading():
    """Make mmengine's ``CheckpointLoader`` read local checkpoints it wrote (see module doc)."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local, force=True)


def restore_numpy_long():
    """Define ``np.long`` (removed in numpy 1.24) as ``np.int_`` if it is missing."""
    try:
        np.long  # noqa: B018  (numpy>=1.24,<2 raises AttributeError here)
    except AttributeError:
        np.long = np.int_
