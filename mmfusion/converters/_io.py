"""File helpers shared by the dataset converters.

Every converter reads a dataset without modifying it and never leaves a half-written output:
outputs are built under temporary names next to their destinations and committed together
(:meth:`Staging.commit`, :func:`commit_staged`): each old output is renamed aside, the new one
renamed in, and the old ones removed only when every rename succeeded; on any error the renames
already made are undone, so the previous output stays as it was (``os.replace`` is atomic on
POSIX within one file system).
"""
import errno
import io
import json
import math
import os
import os.path as osp
import pickle
import shutil
import tempfile
import warnings
from contextlib import contextmanager

REPORT_NAME = 'conversion_report.json'
# PIL's default decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``), kept here because
# other libraries switch PIL's own check off process-wide (``MAX_IMAGE_PIXELS = None``).
MAX_IMAGE_PIXELS = 89478485


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


def open_text(path):
    """Read a UTF-8 text file whole; a drop-in for ``open(path)`` in ``with`` statements.

    Returns:
        io.StringIO: The text, newlines translated as by ``open`` in text mode.

    Raises:
        DatasetFormatError: If the file is not UTF-8 (the message names the line and byte).
    """
    with open(path, 'rb') as f:
        data = f.read()
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b'\n') + 1
        raise DatasetFormatError(
            path, f'line {line}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset '
            f'{e.start})') from None
    return io.StringIO(text, newline=None)


def image_size(path):
    """``(width, height)`` from an image header (PIL reads no pixel data here).

    Raises:
        DatasetFormatError: If the header is unreadable, or claims more than
            :data:`MAX_IMAGE_PIXELS` pixels (PIL's default decompression-bomb limit).
    """
    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('error', Image.DecompressionBombWarning)
            with Image.open(path) as img:
                size = img.size
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise DatasetFormatError(path, f'refused as a decompression bomb ({e})') from None
    except (OSError, SyntaxError, ValueError) as e:  # includes PIL.UnidentifiedImageError
        raise DatasetFormatError(path, f'cannot read image ({e})') from None
    if size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise DatasetFormatError(
            path, f'refused as a decompression bomb: the header claims {size[0]}x{size[1]} '
            f'pixels, more than {MAX_IMAGE_PIXELS}')
    return size


def check_finite(values, path, what):
    """Raise :class:`DatasetFormatError` naming ``path`` if any of ``values`` is NaN or inf."""
    for i, value in enumerate(values):
        if not math.isfinite(value):
            raise DatasetFormatError(path, f'{what}: value {i + 1} is {value} (not finite)')


def check_splits_disjoint(split_ids, where):
    """Refuse a frame listed in two splits, and an empty split.

    Args:
        split_ids (dict): ``{split: iterable of frame ids}`` (after normalisation).
        where (dict): ``{split: path}`` of the list each split comes from (named in errors).

    Raises:
        DatasetFormatError: Naming the later split's file and the shared id.
    """
    seen = {}
    for split, ids in split_ids.items():
        ids = list(ids)
        if not ids:
            raise DatasetFormatError(where[split], f'split {split!r} lists no frames')
        for idx in ids:
            if idx in seen and seen[idx] != split:
                raise DatasetFormatError(
                    where[split], f'frame {idx} is in split {split!r} and also in split '
                    f'{seen[idx]!r} ({where[seen[idx]]}); splits must not overlap')
            seen.setdefault(idx, split)


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


def _aside_name(path):
    folder, name = osp.split(path)
    fd, aside = tempfile.mkstemp(dir=folder, prefix=f'.{name}.old-')
    os.close(fd)
    os.remove(aside)
    return aside


def _remove(path):
    if osp.isdir(path) and not osp.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


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
        """Rename every temporary file to its final name; all or nothing.

        An existing final file is first renamed aside (``<final>.old-*``); the aside copies are
        removed once every new file is in place. On any error (a failed rename, a name taken
        by a folder) the renames already made are undone, the previous files are back under
        their names, the temporary files are removed and the error is re-raised.
        """
        moved = []  # (tmp, final, aside or None)
        try:
            for tmp, final in self.pending:
                aside = None
                if osp.isdir(final) and not osp.islink(final):
                    raise IsADirectoryError(
                        errno.EISDIR, 'output name is taken by a folder', final)
                if osp.lexists(final):
                    aside = _aside_name(final)
                    os.replace(final, aside)
                moved.append((tmp, final, aside))
                os.replace(tmp, final)
        except BaseException:
            self._roll_back(moved)
            self.abort()
            raise
        for _, _, aside in moved:
            if aside is not None:
                _remove(aside)
        self.pending = []
        self.created_dirs = []

    @staticmethod
    def _roll_back(moved):
        """Undo the renames of :meth:`commit`, newest first; keep going past a failed undo."""
        for tmp, final, aside in reversed(moved):
            try:
                if not osp.lexists(tmp) and osp.lexists(final):
                    os.replace(final, tmp)  # the new file goes back to its temporary name
                if aside is not None and osp.lexists(aside):
                    os.replace(aside, final)
            except OSError as e:
                log(f'could not restore {final} (the previous version is {aside}): {e}')

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


def staged_json(staging, obj, final):
    """Write ``obj`` as JSON to a temporary file of ``staging`` that becomes ``final``."""
    with open(staging.tmp_for(final), 'w') as f:
        json.dump(obj, f)


def write_json_outputs(out_dir, outputs):
    """Write several JSON files into ``out_dir`` all or nothing (see :class:`Staging`).

    Args:
        out_dir (str): Destination folder (created if missing).
        outputs (dict): ``{file name: object}``.

    Returns:
        dict: ``{file name: absolute path}``.
    """
    staging = Staging()
    paths = {}
    try:
        for name, obj in outputs.items():
            paths[name] = osp.join(osp.abspath(out_dir), name)
            staged_json(staging, obj, paths[name])
        staging.commit()
    except BaseException:
        staging.abort()
        raise
    return paths


class ConversionReport:
    """What a converter put into the training data: counts per split and class, drops, stats.

    Written as ``<out_dir>/conversion_report.json`` together with the other outputs and
    printed (one line per split) through :func:`log`. Keys: ``dataset``, ``splits``
    (``{split: {'frames': n, 'objects': {class: n}}}``), ``dropped`` (``[{split, class,
    count, reason}]``), and optionally ``points_per_box`` (``{class: {count, min, median,
    mean, max, zero}}``, 3D datasets) and ``notes``.
    """

    def __init__(self, dataset):
        self.dataset = dataset
        self.splits = {}
        self.dropped = {}
        self.points = {}
        self.notes = []

    def add_frames(self, split, n=1):
        entry = self.splits.setdefault(split, dict(frames=0, objects={}))
        entry['frames'] += n

    def add_object(self, split, name, n=1):
        objects = self.splits.setdefault(split, dict(frames=0, objects={}))['objects']
        objects[name] = objects.get(name, 0) + n

    def drop(self, split, name, reason, n=1):
        key = (split, name, reason)
        self.dropped[key] = self.dropped.get(key, 0) + n

    def add_points(self, name, num_points):
        self.points.setdefault(name, []).append(int(num_points))

    def to_dict(self):
        report = dict(
            dataset=self.dataset,
            splits={k: dict(frames=v['frames'], objects=dict(sorted(v['objects'].items())))
                    for k, v in self.splits.items()},
            dropped=[dict(split=s, **{'class': c}, count=n, reason=r)
                     for (s, c, r), n in sorted(self.dropped.items())])
        if self.points:
            report['points_per_box'] = {
                name: _stats(values) for name, values in sorted(self.points.items())}
        if self.notes:
            report['notes'] = self.notes
        return report

    def log_summary(self):
        for split, entry in self.splits.items():
            objects = ', '.join(f'{k} {v}' for k, v in sorted(entry['objects'].items()))
            log(f'{self.dataset} {split}: {entry["frames"]} frames; objects: {objects or "none"}')
        for (split, name, reason), n in sorted(self.dropped.items()):
            log(f'{self.dataset} {split}: dropped {n} {name} object(s): {reason}')


def _stats(values):
    ordered = sorted(values)
    n = len(ordered)
    median = (ordered[(n - 1) // 2] + ordered[n // 2]) / 2
    return dict(count=n, min=ordered[0], median=median, mean=sum(ordered) / n,
                max=ordered[-1], zero=sum(1 for v in ordered if v == 0))
