"""Input checks and clean failures of the command-line tools (``tools/train.py``, ``test.py``).

A bad input (missing config, data root or checkpoint; a corrupt or unsafe checkpoint; an OS
error on a named path) ends the tool with one line on stderr naming the path and the problem,
and exit code 2. ``--debug`` or the environment variable ``MMFUSION_DEBUG=1`` shows the full
traceback instead.
"""
import os
import os.path as osp
import sys

DEBUG_ENV = 'MMFUSION_DEBUG'


class InputError(Exception):
    """A tool input is missing or unusable; the message names the path."""

    def __init__(self, path, problem):
        self.path = str(path)
        super().__init__(f'{self.path}: {problem}')


def add_safety_arguments(parser):
    """Add ``--unsafe-load`` and ``--debug`` to a tool's ``argparse`` parser."""
    parser.add_argument(
        '--unsafe-load', action='store_true',
        help='load checkpoints with full pickle (weights_only=False): only for trusted files; '
        'the default refuses any pickled object outside the allow-list of mmengine types. '
        'The config key unsafe_load = True does the same')
    parser.add_argument(
        '--debug', action='store_true',
        help=f'show the full traceback of an error (also with {DEBUG_ENV}=1)')


def _data_roots(node, where):
    """Yield ``(key path, data_root)`` for every ``data_root`` in a dataset config tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'data_root' and isinstance(value, str) and value:  # '': paths as given
                yield f'{where}.{key}', value
            else:
                yield from _data_roots(value, f'{where}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _data_roots(value, f'{where}[{i}]')


def check_run_inputs(cfg, args, dataloaders):
    """Check what a run reads before the Runner is built, and apply ``--unsafe-load``.

    Args:
        cfg (mmengine.Config): The run's config (after ``--cfg-options``).
        args (argparse.Namespace): Parsed arguments with ``unsafe_load`` (see
            :func:`add_safety_arguments`).
        dataloaders (Sequence[str]): Config keys of the dataloaders the run builds, e.g.
            ``('train_dataloader', 'val_dataloader')``; missing or ``None`` ones, and those
            whose loop config (``val_cfg`` for ``val_dataloader``) is unset, are skipped.

    Raises:
        InputError: If a ``data_root`` of those dataloaders or the checkpoint to load
            (``cfg.load_from``) does not exist.
    """
    from mmfusion.utils.compat import allow_unsafe_checkpoints, restore_mmengine_checkpoint_loading
    restore_mmengine_checkpoint_loading()
    allow_unsafe_checkpoints(bool(getattr(args, 'unsafe_load', False) or cfg.get('unsafe_load')))
    for name in dataloaders:
        loader = cfg.get(name)
        if not loader or not cfg.get(name.replace('_dataloader', '_cfg')):
            continue
        for where, root in _data_roots(loader.get('dataset'), f'{name}.dataset'):
            if not osp.isdir(root):
                raise InputError(root, f'data root ({where}) does not exist')
    load_from = cfg.get('load_from')
    if isinstance(load_from, str) and '://' not in load_from and not osp.isfile(load_from):
        raise InputError(load_from, 'checkpoint does not exist')


def one_line_error(error):
    """The error as one line naming its path (``OSError``: ``'<path>: <reason>'``)."""
    if isinstance(error, OSError) and error.filename is not None:
        return f'{error.filename}: {error.strerror or error}'
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def debug_requested(argv):
    """Whether ``--debug`` is in ``argv`` or ``MMFUSION_DEBUG`` is set (not ``0``)."""
    return '--debug' in argv or os.environ.get(DEBUG_ENV, '') not in ('', '0')


def run_main(main, prog, argv=None):
    """Run ``main()`` and turn a bad-input error into one line on stderr and exit code 2.

    Handled: :class:`InputError`, the checkpoint errors of :mod:`mmfusion.utils.compat` and
    ``OSError`` (missing config, permission, not-a-directory, no space). Anything else, and
    everything under ``--debug`` / ``MMFUSION_DEBUG=1``, propagates with its traceback.

    Returns:
        int: The exit code (0 on success).
    """
    argv = sys.argv[1:] if argv is None else argv
    from mmfusion.utils.compat import CheckpointError
    debug = debug_requested(argv)
    try:
        main()
    except (InputError, CheckpointError, OSError) as e:
        if debug:
            raise
        print(f'{prog}: error: {one_line_error(e)} (--debug for the traceback)',
              file=sys.stderr)
        return 2
    return 0
