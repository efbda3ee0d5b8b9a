"""Save the random-number generators in the checkpoint so a resumed run repeats the same draws."""
import random
from functools import partial

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

CHECKPOINT_KEY = 'random_states'


def get_random_states():
    """This process's Python, NumPy, torch (and CUDA) generator states.

    Returns:
        dict: ``python`` (``random.getstate()``), ``numpy`` (the MT19937 state with its key as an
        int64 tensor), ``torch`` (uint8 tensor), and ``cuda`` (list of uint8 tensors) when CUDA
        is initialised. Every value loads with ``torch.load(weights_only=True)``.
    """
    name, key, pos, has_gauss, gauss = np.random.get_state()
    states = dict(
        python=random.getstate(),
        numpy=(name, torch.from_numpy(key.astype(np.int64)), int(pos), int(has_gauss),
               float(gauss)),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states):
    """Restore states returned by :func:`get_random_states`."""
    version, internal, gauss = states['python']
    random.setstate((version, tuple(internal), gauss))
    name, key, pos, has_gauss, cached = states['numpy']
    np.random.set_state((name, key.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states['torch'])
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states['cuda'])


def seed_worker(worker_id, seed, epoch, rank, init_fn=None):
    """Seed a dataloader worker from ``(seed, epoch, rank, worker_id)`` (after ``init_fn``).

    Python's, NumPy's and torch's generators of the worker get the same 32-bit seed, drawn by
    ``numpy.random.SeedSequence`` from the four numbers, so no two workers, ranks or epochs share
    a stream and a worker started for epoch ``e`` of a resumed run draws what it drew in the
    uninterrupted run.
    """
    if init_fn is not None:
        init_fn(worker_id)
    worker_seed = int(np.random.SeedSequence([seed, epoch, rank, worker_id]).generate_state(1)[0])
    random.seed(worker_seed)
    np.random.seed(worker_seed)
    torch.manual_seed(worker_seed)


class _RestoringIterator:
    """Iterator proxy that sets the pending random states right before a batch is fetched."""

    def __init__(self, iterator, hook):
        self.iterator = iterator
        self.hook = hook

    def __iter__(self):
        return self

    def __next__(self):
        self.hook._before_fetch()
        return next(self.iterator)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Resume training bit-exactly with random data augmentation and random layers.

    Stock mmengine restores only the seed on ``--resume``, so the generators restart from the
    seed and a resumed run draws different augmentations and dropout masks than the
    uninterrupted one. This hook stores every rank's Python, NumPy and torch (CUDA) generator
    states in the checkpoint (key ``'random_states'``, one entry per rank, gathered from all
    ranks) and makes the generators hold those states when the next training batch is fetched,
    both in the uninterrupted run and after resuming:

    - epoch-based loops: states taken at the end of each training epoch (before the checkpoint
      is written) are set at the start of the next one, so what runs in between (validation,
      checkpointing) draws nothing from the training stream. Dataloader workers are started
      anew each epoch (persistent workers too) and seeded by :func:`seed_worker` from
      ``(seed, epoch, rank, worker id)``: a worker's stream depends only on the epoch, not on
      how many epochs the process has run. The sampler needs nothing: mmengine's samplers
      derive their order from the seed and the epoch.
    - iteration-based loops: states taken after an iteration whose checkpoint is saved are set
      right before the next batch is fetched, after mmengine has replayed the dataloader up to
      the resumed iteration (which also brings the workers and the infinite sampler back to
      where they were).

    Resume from an epoch-based loop's mid-epoch (``by_epoch=False``) checkpoint is not exact:
    mmengine restarts that epoch. With a different number of ranks than the checkpoint's, the
    states are not restored (a warning says so).
    """

    priority = 'LOW'  # after the logger, before CheckpointHook (VERY_LOW) writes the file

    def __init__(self):
        self._captured = None  # per-rank states of the last capture (rank 0 keeps all)
        self._pending = None  # this rank's states to set before the next fetch
        self._skip = 0  # fetches to let pass first (mmengine's replay after resume)

    # capture --------------------------------------------------------------------------------
    def _capture(self, runner):
        state = get_random_states()
        if get_world_size() > 1:
            self._captured = all_gather_object(state)
        else:
            self._captured = [state]
        self._pending, self._skip = state, 0

    def _checkpoint_hooks(self, runner):
        return [h for h in runner.hooks if isinstance(h, CheckpointHook)]

    def after_train_epoch(self, runner):
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            self._capture(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if not isinstance(runner.train_loop, IterBasedTrainLoop):
            return
        hooks = [h for h in self._checkpoint_hooks(runner) if not h.by_epoch]
        if not hooks or any(
                h.every_n_train_iters(runner, h.interval, h.save_begin)
                or (h.save_last and h.is_last_train_iter(runner)) for h in hooks):
            self._capture(runner)

    def before_save_checkpoint(self, runner, checkpoint):
        captured = self._captured
        if captured is None:  # a save outside the loop's boundaries: this rank's states only
            captured = [get_random_states()]
        checkpoint[CHECKPOINT_KEY] = captured

    # restore --------------------------------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint):
        if not getattr(runner, '_resume', False) or CHECKPOINT_KEY not in checkpoint:
            return
        states = checkpoint[CHECKPOINT_KEY]
        if len(states) != get_world_size():
            runner.logger.warning(
                f'RandomStateHook: the checkpoint holds generator states of {len(states)} '
                f'rank(s), this run has {get_world_size()}; states not restored')
            return
        self._captured = states
        self._pending = states[get_rank()]
        # the loop's iteration is set from the checkpoint after this hook runs
        self._skip = checkpoint['meta']['iter'] if isinstance(
            runner.train_loop, IterBasedTrainLoop) else 0

    def _before_fetch(self):
        if self._pending is None:
            return
        if self._skip > 0:
            self._skip -= 1
            return
        set_random_states(self._pending)
        self._pending = None

    def before_train_epoch(self, runner):
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop):
            if not isinstance(loop.dataloader_iterator, _RestoringIterator):
                loop.dataloader_iterator = _RestoringIterator(loop.dataloader_iterator, self)
            return
        self._before_fetch()
        self._reseed_workers(runner, loop.dataloader)

    def _reseed_workers(self, runner, loader):
        if loader.num_workers == 0:
            return
        init_fn = loader.worker_init_fn
        while isinstance(init_fn, partial) and init_fn.func is seed_worker:
            init_fn = init_fn.keywords['init_fn']
        loader.worker_init_fn = partial(
            seed_worker, seed=runner.seed, epoch=runner.epoch, rank=get_rank(), init_fn=init_fn)
        # persistent workers keep their streams across epochs: start them anew
        iterator = getattr(loader, '_iterator', None)
        if iterator is not None:
            iterator._shutdown_workers()
            loader._iterator = None
