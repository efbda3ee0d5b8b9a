"""Compatibility of the pinned OpenMMLab releases with the newer torch and numpy installed here.

Two defects of the stock stack, each fixed at the narrowest point (both idempotent):

1. mmengine 0.10.7 loads checkpoints with ``torch.load(filename, map_location)``. Since torch 2.6
   that means ``weights_only=True``, and every checkpoint mmengine's Runner writes stores objects
   that unpickler refuses by default: its message hub (``mmengine.logging.HistoryBuffer`` holding
   numpy arrays, numpy scalars in the runtime info). :func:`restore_mmengine_checkpoint_loading`
   allow-lists exactly those types (:func:`mmengine_safe_globals`, through
   ``torch.serialization.add_safe_globals``; ``builtins.getattr`` only for ``HistoryBuffer``'s
   statistics methods) and registers a local-file loader that keeps
   ``weights_only=True``: a checkpoint holding any other pickled object (a class, a function, a
   ``__reduce__`` that would run code) is refused with :class:`UnsafeCheckpointError` naming the
   file and the offending globals, before anything in it runs. :func:`allow_unsafe_checkpoints`
   (``--unsafe-load`` of ``tools/train.py`` / ``tools/test.py``, or ``unsafe_load = True`` in a
   config read by them) is the explicit opt-in to full pickle loading for a trusted file.
   On torch < 2.4 (no allow-list API; ``torch.load`` defaults to full pickle there) nothing is
   changed.
2. mmdet3d 1.4.0's ``DataBaseSampler.sample_all`` (the stock ``ObjectSample`` GT-paste
   augmentation of most KITTI configs) uses ``np.long``, removed in numpy 1.24 (mmdetection3d
   issue 2821); ``numpy<2`` is pinned here for nuscenes-devkit. :func:`restore_numpy_long` defines
   it as ``np.int_``, its meaning in numpy 2 (C long, int64 on Linux).
"""
import os.path as osp
import pickle
import re

import numpy as np
import torch


class CheckpointError(Exception):
    """A checkpoint file cannot be loaded; the message names the file and the problem."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint is not a readable ``torch.save`` file (truncated, corrupt, another format)."""

    def __init__(self, path, problem):
        self.path = str(path)
        super().__init__(f'{self.path}: not a readable checkpoint ({problem})')


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint holds pickled objects outside the allow-list; nothing of it was executed.

    Attributes:
        path (str): The checkpoint file.
        globals (list[str]): The refused ``module.name`` globals (empty if unknown).
    """

    def __init__(self, path, unsafe_globals, detail=''):
        self.path = str(path)
        self.globals = list(unsafe_globals)
        found = ', '.join(self.globals) if self.globals else detail
        super().__init__(
            f'{self.path}: refusing to load a checkpoint that holds pickled objects outside the '
            f'allow-list ({found}); loading it can run arbitrary code. If you trust the file, '
            'pass --unsafe-load (or set unsafe_load = True in the config)')


def _numpy_safe_globals():
    """numpy's pickle constructors and the plain dtypes (no object or void dtype).

    Boolean, integer, float, complex, string, bytes, datetime and timedelta arrays and scalars
    (message hub buffers, runtime info, dataset meta).
    """
    from numpy.core import multiarray
    codes = ['?', 'b', 'B', 'h', 'H', 'i', 'I', 'l', 'L', 'q', 'Q', 'e', 'f', 'd', 'g', 'F', 'D',
             'G', 'S', 'U', 'M8[s]', 'm8[s]']
    dtypes = list(dict.fromkeys(type(np.dtype(c)) for c in codes))
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype] + dtypes


def _history_buffer_statistic(owner, name):
    """``getattr`` as a checkpoint may call it: only a ``HistoryBuffer`` statistics method.

    ``HistoryBuffer.__getstate__`` stores its statistics methods (``min``, ``max``, ``mean``,
    ``current`` and registered ones), which pickle as ``getattr(HistoryBuffer, name)``. A general
    ``getattr`` would let a pickle reach any attribute of any allowed object, so this stands in
    for ``builtins.getattr`` during loading.

    Raises:
        pickle.UnpicklingError: For any other object or name.
    """
    from mmengine.logging import HistoryBuffer
    allowed = {'min', 'max', 'mean', 'current'} | set(HistoryBuffer._statistics_methods)
    if isinstance(owner, type) and issubclass(owner, HistoryBuffer) and name in allowed:
        return getattr(owner, name)
    raise pickle.UnpicklingError(
        f'GLOBAL builtins.getattr on {owner!r}.{name} is outside the allow-list')


def mmengine_safe_globals():
    """The non-tensor types an mmengine Runner checkpoint holds (none of them runs code).

    Found by reading the globals of Runner-written checkpoints
    (``torch.serialization.get_unsafe_globals_in_checkpoint``): ``HistoryBuffer`` (log scalars
    of the message hub) and its statistics methods (``builtins.getattr``, replaced by
    :func:`_history_buffer_statistic`), numpy arrays, scalars and their dtypes (runtime info,
    buffers).

    Returns:
        list: Entries for ``torch.serialization.add_safe_globals``.
    """
    from mmengine.logging import HistoryBuffer
    return ([HistoryBuffer, (_history_buffer_statistic, 'builtins.getattr')]
            + _numpy_safe_globals())


_UNSAFE_ALLOWED = False


def allow_unsafe_checkpoints(allow=True):
    """Opt in (or back out) of full pickle loading for every later checkpoint load.

    Only for files from a trusted source: unpickling them can run arbitrary code.
    """
    global _UNSAFE_ALLOWED
    _UNSAFE_ALLOWED = bool(allow)


def _unsafe_globals(filename, error):
    """The globals refused in ``filename`` (read statically, nothing is executed)."""
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    except Exception:  # legacy (non-zip) format or unreadable: fall back to the message
        return re.findall(r'GLOBAL (\S+)', str(error))


def load_from_local(filename, map_location=None):
    """Load a local checkpoint with ``weights_only=True`` unless unsafe loading was allowed.

    Args:
        filename (str): Path of a ``torch.save`` file.
        map_location: As for ``torch.load``.

    Returns:
        The loaded object.

    Raises:
        FileNotFoundError: If ``filename`` is not a file.
        UnsafeCheckpointError: If it holds globals outside the allow-list (and unsafe loading is
            not allowed); the message names the file and the globals.
        CorruptCheckpointError: If it is not a readable ``torch.save`` file.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(mmengine_safe_globals())
    try:
        return torch.load(filename, map_location=map_location, weights_only=not _UNSAFE_ALLOWED)
    except pickle.UnpicklingError as e:
        found = _unsafe_globals(filename, e)
        refused = re.search(r'but got (.+?)\s*$', str(e), re.M)
        if found or refused or 'GLOBAL' in str(e):
            detail = refused.group(1) if refused else _first_line(e)
            raise UnsafeCheckpointError(filename, found, detail) from None
        raise CorruptCheckpointError(filename, _first_line(e)) from e
    except (RuntimeError, EOFError, ValueError) as e:  # torch's zip reader, a truncated pickle
        raise CorruptCheckpointError(filename, f'{type(e).__name__}: {_first_line(e)}') from e


def _first_line(error):
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def restore_mmengine_checkpoint_loading():
    """Make mmengine read the checkpoints it writes, safely, under torch>=2.6 (see module doc)."""
    if not hasattr(torch.serialization, 'add_safe_globals'):
        return
    from mmengine.runner.checkpoint import CheckpointLoader
    torch.serialization.add_safe_globals(mmengine_safe_globals())
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)


def restore_numpy_long():
    """Define ``np.long`` (removed in numpy 1.24) as ``np.int_`` if it is missing."""
    try:
        np.long  # noqa: B018  (numpy>=1.24,<2 raises AttributeError here)
    except AttributeError:
        np.long = np.int_
