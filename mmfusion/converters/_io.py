"""File helpers shared by the dataset converters.

Every converter reads a dataset without modifying it and never leaves a half-written output:
outputs are written to a temporary name in the destination folder and renamed into place
(``os.replace`` is atomic on POSIX within one file system).
"""
import json
import os
import os.path as osp
import pickle
import shutil
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


def log(msg):
    """Log through mmengine's current logger (plain ``print`` if mmengine is missing)."""
    try:
        from mmengine.logging import print_log
    except ImportError:
        print(msg)
    else:
        print_log(msg, logger='current')


@contextmanager
def staging_dir(out_dir, tag):
    """A scratch folder ``out_dir/.tmp-<tag>-*`` for outputs built before :func:`commit_staged`.

    ``out_dir`` is created if missing. On an error the scratch folder is removed, and so is
    ``out_dir`` if this call created it and it is still empty; on success the scratch folder is
    removed after the ``with`` block (commit the outputs inside it).

    Yields:
        str: The scratch folder (on the same file system as ``out_dir``).
    """
    out_dir = osp.abspath(out_dir)
    created = not osp.isdir(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=out_dir, prefix=f'.tmp-{tag}-')
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created and not os.listdir(out_dir):
            os.rmdir(out_dir)
        raise
    shutil.rmtree(tmp)


def commit_staged(stage, out_dir, names, backup_dir):
    """Move ``stage/<name>`` to ``out_dir/<name>`` for each name; all or nothing.

    For converters whose output is several files or folders built in a staging folder: an
    existing output of the same name is moved to ``backup_dir`` first and replaced as a whole;
    if any move fails, the moves already made are undone and the error is re-raised.

    Args:
        stage (str): Folder holding the finished outputs (same file system as ``out_dir``).
        out_dir (str): Destination folder.
        names (list[str]): Top-level names under ``stage`` to move.
        backup_dir (str): Folder to create for the replaced outputs (the caller removes it).
    """
    os.makedirs(backup_dir)
    done = []
    try:
        for name in names:
            dst = osp.join(out_dir, name)
            had_old = osp.lexists(dst)
            if had_old:
                os.replace(dst, osp.join(backup_dir, name))
            try:
                os.replace(osp.join(stage, name), dst)
            except BaseException:
                if had_old:
                    os.replace(osp.join(backup_dir, name), dst)
                raise
            done.append((name, had_old))
    except BaseException:
        for name, had_old in reversed(done):
            dst = osp.join(out_dir, name)
            os.replace(dst, osp.join(stage, name))
            if had_old:
                os.replace(osp.join(backup_dir, name), dst)
        raise


class Staging:
    """Temporary files in their destination folders, renamed into place only on commit.

    For converters that write many files (images, masks) and want all of them or none: each
    output is written to :meth:`tmp_for` ``(final)``; :meth:`commit` renames every temporary
    file to its final name, :meth:`abort` removes them and the folders this object created.
    """

    def __init__(self):
        self.pending = []  # (tmp, final)
        self.created_dirs = []

    def _makedirs(self, folder):
        missing = []
        while folder and not osp.isdir(folder):
            missing.append(folder)
            parent = osp.dirname(folder)
            if parent == folder:
                break
            folder = parent
        for d in reversed(missing):
            os.mkdir(d)
            self.created_dirs.append(d)

    def tmp_for(self, final):
        """Return a new temporary path beside ``final``, renamed to it on :meth:`commit`."""
        final = osp.abspath(final)
        folder = osp.dirname(final)
        self._makedirs(folder)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + osp.basename(final) + '.',
                                   suffix='.tmp')
        os.close(fd)
        self.pending.append((tmp, final))
        return tmp

    def commit(self):
        for tmp, final in self.pending:
            os.replace(tmp, final)
        self.pending = []
        self.created_dirs = []

    def abort(self):
        for tmp, _ in self.pending:
            if osp.exists(tmp):
                os.remove(tmp)
        self.pending = []
        for d in reversed(self.created_dirs):
            try:
                os.rmdir(d)
            except OSError:
                pass
        self.created_dirs = []
