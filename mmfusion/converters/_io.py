"""File helpers shared by the dataset converters.

Every converter reads a dataset without modifying it and never leaves a half-written output:
outputs are written to a temporary name in the destination folder and renamed into place
(``os.replace`` is atomic on POSIX within one file system).
"""
import json
import os
import os.path as osp
import pickle
import tempfile
from contextlib import contextmanager


class DatasetFormatError(ValueError):
    """Raised when a dataset file is missing or malformed; the message names the file."""

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f'{self.path}: {problem}')


@contextmanager
def atomic_open(path, mode='wb'):
    """Open a temporary file beside ``path``; rename it to ``path`` only on success.

    Args:
        path (str): Final output path. Its folder is created if missing.
        mode (str): ``'wb'`` or ``'w'``.

    Yields:
        file: The open temporary file.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + osp.basename(path) + '.', suffix='.tmp')
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def dump_json(obj, path):
    """Write ``obj`` as JSON to ``path`` atomically."""
    with atomic_open(path, 'w') as f:
        json.dump(obj, f)


def dump_pickle(obj, path):
    """Write ``obj`` as a pickle (mmengine's ``.pkl`` info format) to ``path`` atomically."""
    with atomic_open(path, 'wb') as f:
        pickle.dump(obj, f)


def check_output_outside(out_path, dataset_root):
    """Refuse an output path inside the dataset folder, so a converter never writes there.

    Raises:
        ValueError: If ``out_path`` lies inside ``dataset_root``.
    """
    out = osp.realpath(out_path)
    root = osp.realpath(dataset_root)
    if out == root or out.startswith(root + os.sep):
        raise ValueError(f'output {out_path} lies inside the dataset {dataset_root}; '
                         'converters never write into the dataset they read')
