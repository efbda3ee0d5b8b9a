"""NYU Depth v2 (NYUDv2) converter: official release or extracted folder -> extracted layout.

Dataset: N. Silberman, D. Hoiem, P. Kohli, R. Fergus, "Indoor Segmentation and Support
Inference from RGBD Images", ECCV 2012. 1449 densely labelled RGB-D frames (640x480), split
into the standard 795 training / 654 test frames. Research use only (non-commercial).

Input layouts (``create_nyudv2_infos`` decides by what is present in ``root_path``):

1. Official release: a folder holding

   - ``nyu_depth_v2_labeled.mat``: MATLAB v7.3 (= HDF5, read with h5py). h5py sees the MATLAB
     arrays transposed: ``images`` uint8 ``(N, 3, W=640, H=480)``, ``depths`` float32 metres
     ``(N, 640, 480)`` (the inpainted, hole-free depth; ``depth_key='rawDepths'`` picks the raw
     depth with holes instead), ``labels`` uint16 ``(N, 640, 480)`` with 894 classes and
     0 = void. Frames are transposed back to ``H x W``.
   - ``splits.mat`` (scipy.io): ``trainNdxs`` (795) and ``testNdxs`` (654), 1-based frame indices.
   - ``classMapping40.mat`` (scipy.io): ``mapClass`` uint8 ``(1, 894)``, entry ``c - 1`` is the
     40-class id (1..40) of the 894-class id ``c``; it also holds ``className`` (the 40 names,
     ``wall``, ``floor``, ... ``otherprop``), ``allClassName`` (the 894 names),
     ``mapToNYUSuperClass`` and ``mapToNYUSuperClassMat``.

   ``splits.mat`` and ``classMapping40.mat`` are looked up in ``root_path`` then in
   ``root_path/official``; any of the three files may also be given as a path.

2. Extracted folder (e.g. as preprocessed by multi-task-refinenet): ``train.txt`` and ``val.txt``
   listing triplets ``rgb/<id>.png<TAB>masks/<id>.png<TAB>depth/<id>.png`` relative to the
   folder. Every listed file is validated and copied byte for byte.

Output layout (both inputs give the same thing, the layout the project's NYUDv2 dataset reads)::

    {out_dir}/rgb/<id>.png     8-bit RGB, 640x480
    {out_dir}/depth/<id>.png   uint16, metres = value / 5000 (0 = no depth; max 13.107 m)
    {out_dir}/masks/<id>.png   uint8, 40 classes as 0..39, 255 = ignore/void
    {out_dir}/train.txt        rgb/<id>.png<TAB>masks/<id>.png<TAB>depth/<id>.png per line
    {out_dir}/val.txt          same, for the 654 test frames

From the official release ``<id>`` is the 1-based frame index in the .mat zero-padded to six
digits (frame 433 -> ``000433``), ``train.txt`` lists ``trainNdxs`` and ``val.txt`` lists
``testNdxs``. From an extracted folder ``<id>`` is the stem of the listed RGB file.

Depth encoding: ``value = round(depth_m * 5000)`` as uint16; non-finite depths become 0 (no
depth); a negative depth or one above 65535 / 5000 m is an error (wrong unit).

Class mapping: 894-class label 0 (void) -> 255; label ``c`` in 1..894 -> ``mapClass[c - 1] - 1``
(0..39); a class that maps to 0 -> 255.

Outputs are written to temporary names in their destination folders and renamed into place only
once every frame has been read and checked, so an error leaves no partial output. The input is
never modified and the output folder may not lie inside it.
"""
import os.path as osp
import shutil

import numpy as np
from PIL import Image
from tqdm import tqdm

from ._io import (REPORT_NAME, ConversionReport, DatasetFormatError, Staging, check_output_outside,
                  check_splits_disjoint, image_size, open_text, staged_json)

MAT_NAME = 'nyu_depth_v2_labeled.mat'
SPLITS_NAME = 'splits.mat'
MAPPING_NAME = 'classMapping40.mat'
LIST_NAMES = ('train.txt', 'val.txt')
DEPTH_SCALE = 5000.0
NUM_CLASSES = 40
NUM_RAW_CLASSES = 894
IGNORE_INDEX = 255

# PNG IHDR colour types
_PNG_GRAY, _PNG_RGB = 0, 2
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def _list_line(frame_id):
    return f'rgb/{frame_id}.png\tmasks/{frame_id}.png\tdepth/{frame_id}.png\n'


def _write_lists(staging, out_dir, lists):
    """Stage ``train.txt``/``val.txt`` from ``{'train': [ids], 'val': [ids]}``."""
    paths = {}
    for split, name in zip(('train', 'val'), LIST_NAMES):
        final = osp.join(out_dir, name)
        with open(staging.tmp_for(final), 'w') as f:
            f.writelines(_list_line(i) for i in lists[split])
        paths[split] = final
    return paths


def _save_png(staging, array, final):
    Image.fromarray(array).save(staging.tmp_for(final), format='PNG')


# ----------------------------------------------------------------------------------------------
# official release (.mat)
# ----------------------------------------------------------------------------------------------


def _find_helper(root_path, name, given):
    if given is not None:
        if not osp.isfile(given):
            raise DatasetFormatError(given, f'{name} not found')
        return given
    candidates = [osp.join(root_path, name), osp.join(root_path, 'official', name)]
    for c in candidates:
        if osp.isfile(c):
            return c
    raise DatasetFormatError(candidates[0], f'{name} not found (also looked in '
                             f'{candidates[1]}); it is needed to convert {MAT_NAME}')


def _loadmat(path):
    import scipy.io
    try:
        return scipy.io.loadmat(path)
    except Exception as e:  # scipy raises ValueError, TypeError, OSError... on bad files
        raise DatasetFormatError(path, f'unreadable MATLAB file ({type(e).__name__}: {e})')


def load_splits(splits_path, num_frames=None):
    """Read ``trainNdxs``/``testNdxs`` (1-based) from ``splits.mat``.

    Args:
        splits_path (str): Path of ``splits.mat``.
        num_frames (int, optional): Number of frames in the .mat; indices must lie in 1..N.

    Returns:
        dict: ``{'train': ndarray, 'val': ndarray}`` of 1-based int64 frame indices.

    Raises:
        DatasetFormatError: If the file is unreadable, a variable is missing, an index is not
            a positive integer or out of range, or the splits repeat or share an index.
    """
    mat = _loadmat(splits_path)
    out = {}
    for split, key in (('train', 'trainNdxs'), ('val', 'testNdxs')):
        if key not in mat:
            found = sorted(k for k in mat if not k.startswith('__'))
            raise DatasetFormatError(splits_path, f'missing variable {key!r} (found: {found})')
        raw = np.asarray(mat[key]).ravel()
        if raw.size == 0 or raw.dtype.kind not in 'uif' or not np.all(np.isfinite(raw)) \
                or not np.all(raw == np.round(raw)):
            raise DatasetFormatError(splits_path, f'{key} must hold integer frame indices')
        ndx = raw.astype(np.int64)
        bad = ndx[ndx < 1] if num_frames is None else ndx[(ndx < 1) | (ndx > num_frames)]
        if bad.size:
            limit = f'1..{num_frames}' if num_frames is not None else '>= 1'
            raise DatasetFormatError(splits_path, f'{key} index {int(bad[0])} out of range '
                                     f'{limit} (1-based frame indices of the .mat)')
        if np.unique(ndx).size != ndx.size:
            raise DatasetFormatError(splits_path, f'{key} repeats frame indices')
        out[split] = ndx
    common = np.intersect1d(out['train'], out['val'])
    if common.size:
        raise DatasetFormatError(splits_path, f'trainNdxs and testNdxs share {common.size} '
                                 f'frames (e.g. {int(common[0])})')
    return out


def load_class_mapping(mapping_path):
    """Read the 894 -> 40 class mapping as a lookup table on raw label values.

    Args:
        mapping_path (str): Path of ``classMapping40.mat`` (variable ``mapClass``, 1 x 894,
            values 1..40).

    Returns:
        ndarray: uint8 table of length 895: ``lut[0] = 255`` (void), ``lut[c] = mapClass[c-1]-1``
        for c in 1..894, with classes mapping to 0 set to 255.

    Raises:
        DatasetFormatError: If the file is unreadable or ``mapClass`` is missing or malformed.
    """
    mat = _loadmat(mapping_path)
    if 'mapClass' not in mat:
        found = sorted(k for k in mat if not k.startswith('__'))
        raise DatasetFormatError(mapping_path, f"missing variable 'mapClass' (found: {found})")
    m = np.asarray(mat['mapClass']).ravel()
    if m.size != NUM_RAW_CLASSES or m.dtype.kind not in 'uif':
        raise DatasetFormatError(mapping_path, f'mapClass must hold {NUM_RAW_CLASSES} class ids, '
                                 f'got {m.size} of dtype {m.dtype}')
    if not np.all(np.isfinite(m)) or np.any(m != np.round(m)) or m.min() < 0 \
            or m.max() > NUM_CLASSES:
        raise DatasetFormatError(mapping_path, f'mapClass values must be integers in '
                                 f'0..{NUM_CLASSES}')
    m = m.astype(np.int64)
    lut = np.full(NUM_RAW_CLASSES + 1, IGNORE_INDEX, dtype=np.uint8)
    lut[1:] = np.where(m == 0, IGNORE_INDEX, m - 1).astype(np.uint8)
    return lut


def encode_depth(depth_m, path, frame):
    """Metres (float) -> uint16 PNG values (metres * 5000); non-finite -> 0.

    Raises:
        DatasetFormatError: If a depth is negative or above 65535 / 5000 m (wrong unit).
    """
    d = np.asarray(depth_m, dtype=np.float64)
    d = np.where(np.isfinite(d), d, 0.0)
    if d.size and (d.min() < 0 or d.max() > 65535 / DEPTH_SCALE):
        raise DatasetFormatError(path, f'frame {frame}: depth range {d.min():.3f}..{d.max():.3f} '
                                 f'outside 0..{65535 / DEPTH_SCALE:.3f} m; depths must be metres')
    return np.round(d * DEPTH_SCALE).astype(np.uint16)


def _check_mat_layout(f, mat_path, depth_key):
    for key in ('images', depth_key, 'labels'):
        if key not in f:
            raise DatasetFormatError(mat_path, f'missing dataset {key!r} (found: {sorted(f)})')
        if not hasattr(f[key], 'shape'):
            raise DatasetFormatError(mat_path, f'{key!r} is not a dataset')
    images, depths, labels = f['images'], f[depth_key], f['labels']
    if images.ndim != 4 or images.shape[1] != 3:
        raise DatasetFormatError(mat_path, f"'images' has shape {images.shape}; expected "
                                 '(N, 3, W, H) as h5py sees a MATLAB v7.3 array')
    if images.dtype != np.uint8:
        raise DatasetFormatError(mat_path, f"'images' has dtype {images.dtype}; expected uint8")
    num, _, width, height = images.shape
    for key, ds, kinds in ((depth_key, depths, 'f'), ('labels', labels, 'ui')):
        if ds.shape != (num, width, height):
            raise DatasetFormatError(mat_path, f'{key!r} has shape {ds.shape}; expected '
                                     f'{(num, width, height)} to match images {images.shape}')
        if ds.dtype.kind not in kinds:
            raise DatasetFormatError(mat_path, f'{key!r} has dtype {ds.dtype}')
    return images, depths, labels


def _convert_mat(mat_path, splits_path, mapping_path, out_dir, staging, desc, depth_key):
    import h5py
    lut = load_class_mapping(mapping_path)
    try:
        f = h5py.File(mat_path, 'r')
    except OSError as e:
        raise DatasetFormatError(mat_path, f'not readable as MATLAB v7.3 / HDF5 ({e})')
    with f:
        images, depths, labels = _check_mat_layout(f, mat_path, depth_key)
        num = images.shape[0]
        splits = load_splits(splits_path, num)
        lists = {s: [f'{int(i):06d}' for i in splits[s]] for s in ('train', 'val')}
        order = np.concatenate([splits['train'], splits['val']])
        for ndx in tqdm(order, desc=f'{desc}: converting frames', unit='frame'):
            i = int(ndx) - 1  # 1-based frame index -> 0-based row
            frame_id = f'{int(ndx):06d}'
            try:
                rgb = np.ascontiguousarray(images[i].transpose(2, 1, 0))
                depth = np.asarray(depths[i]).T
                label = np.asarray(labels[i]).T
            except (OSError, ValueError) as e:  # damaged / truncated HDF5 chunks
                raise DatasetFormatError(mat_path, f'frame {ndx}: unreadable ({e})')
            bad = label[(label < 0) | (label > NUM_RAW_CLASSES)]
            if bad.size:
                raise DatasetFormatError(mat_path, f'frame {ndx}: label value {int(bad[0])} '
                                         f'outside 0..{NUM_RAW_CLASSES}')
            mask = lut[label.astype(np.int64)]
            depth_png = encode_depth(depth, mat_path, ndx)
            _save_png(staging, rgb, osp.join(out_dir, 'rgb', frame_id + '.png'))
            _save_png(staging, depth_png, osp.join(out_dir, 'depth', frame_id + '.png'))
            _save_png(staging, np.ascontiguousarray(mask),
                      osp.join(out_dir, 'masks', frame_id + '.png'))
    return lists


# ----------------------------------------------------------------------------------------------
# extracted folder (train.txt / val.txt)
# ----------------------------------------------------------------------------------------------


def _png_header(path):
    """Return (bit depth, colour type) from the PNG IHDR chunk."""
    with open(path, 'rb') as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != _PNG_SIGNATURE or head[12:16] != b'IHDR':
        raise DatasetFormatError(path, 'not a PNG file')
    return head[24], head[25]


def _read_png(path, what, list_path, bit_depth, colour_type, expect):
    if not osp.isfile(path):
        raise DatasetFormatError(path, f'{what} file listed in {list_path} is missing')
    try:
        got = _png_header(path)
    except OSError as e:
        raise DatasetFormatError(path, f'unreadable {what} file ({e})')
    if got != (bit_depth, colour_type):
        raise DatasetFormatError(path, f'{what} PNG has bit depth {got[0]}, colour type '
                                 f'{got[1]}; expected {expect}')
    image_size(path)  # refuses decompression bombs before decoding
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.array(im)
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... on damaged PNGs
        raise DatasetFormatError(path, f'unreadable {what} PNG ({type(e).__name__}: {e})')
    if bit_depth == 16:
        arr = arr.astype(np.uint16)  # older Pillow opens 16-bit grey as mode 'I' (int32)
    return arr


def _read_list(list_path):
    entries = []
    with open_text(list_path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split('\t') if '\t' in line else line.split()
            if len(parts) != 3:
                raise DatasetFormatError(list_path, f'line {lineno}: expected '
                                         f'rgb<TAB>mask<TAB>depth, got {line!r}')
            entries.append(tuple(parts))
    return entries


def _check_triplet(root_path, list_path, rgb_rel, mask_rel, depth_rel):
    rgb_path, mask_path, depth_path = (osp.join(root_path, p) for p in (rgb_rel, mask_rel,
                                                                        depth_rel))
    rgb = _read_png(rgb_path, 'rgb', list_path, 8, _PNG_RGB, '8-bit RGB')
    depth = _read_png(depth_path, 'depth', list_path, 16, _PNG_GRAY, '16-bit grey (uint16)')
    mask = _read_png(mask_path, 'mask', list_path, 8, _PNG_GRAY, '8-bit grey (uint8)')
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise DatasetFormatError(rgb_path, f'rgb image has shape {rgb.shape}; expected H x W x 3')
    bad = np.setdiff1d(np.unique(mask), np.r_[np.arange(NUM_CLASSES), IGNORE_INDEX])
    if bad.size:
        raise DatasetFormatError(mask_path, f'mask values {bad.tolist()[:10]} outside '
                                 f'0..{NUM_CLASSES - 1} and {IGNORE_INDEX}')
    hw = rgb.shape[:2]
    for path, arr in ((depth_path, depth), (mask_path, mask)):
        if arr.shape != hw:
            raise DatasetFormatError(path, f'size {arr.shape[1]}x{arr.shape[0]} differs from '
                                     f'the rgb image {rgb_path} ({hw[1]}x{hw[0]})')
    return rgb_path, mask_path, depth_path


def _convert_extracted(root_path, out_dir, staging, desc, allow_overlap):
    entries = {}
    for split, name in zip(('train', 'val'), LIST_NAMES):
        list_path = osp.join(root_path, name)
        entries[split] = [(list_path, e) for e in _read_list(list_path)]
    _check_extracted_splits(root_path, entries, allow_overlap)
    lists = {'train': [], 'val': []}
    sources = {}  # id -> (rgb, mask, depth) real paths
    total = len(entries['train']) + len(entries['val'])
    with tqdm(total=total, desc=f'{desc}: checking frames', unit='frame') as bar:
        for split in ('train', 'val'):
            for list_path, (rgb_rel, mask_rel, depth_rel) in entries[split]:
                frame_id = osp.splitext(osp.basename(rgb_rel))[0]
                src = tuple(osp.realpath(osp.join(root_path, p))
                            for p in (rgb_rel, mask_rel, depth_rel))
                if frame_id in sources:
                    if sources[frame_id] != src:
                        raise DatasetFormatError(list_path, f'frame id {frame_id!r} lists '
                                                 f'different files than an earlier line')
                else:
                    rgb_path, mask_path, depth_path = _check_triplet(
                        root_path, list_path, rgb_rel, mask_rel, depth_rel)
                    sources[frame_id] = src
                    for sub, path in (('rgb', rgb_path), ('masks', mask_path),
                                      ('depth', depth_path)):
                        final = osp.join(out_dir, sub, frame_id + '.png')
                        shutil.copyfile(path, staging.tmp_for(final))
                lists[split].append(frame_id)
                bar.update(1)
    return lists


def _check_extracted_splits(root_path, entries, allow_overlap):
    """Refuse an empty list, a frame listed twice in one list, and a frame in both lists."""
    ids = {}
    for split, name in zip(('train', 'val'), LIST_NAMES):
        seen = set()
        for list_path, (rgb_rel, _, _) in entries[split]:
            frame_id = osp.splitext(osp.basename(rgb_rel))[0]
            if frame_id in seen:
                raise DatasetFormatError(list_path, f'frame {frame_id!r} is listed twice')
            seen.add(frame_id)
        ids[split] = sorted(seen)
        if not seen:
            raise DatasetFormatError(osp.join(root_path, name), 'lists no frames')
    if allow_overlap:
        return
    check_splits_disjoint(ids, {s: osp.join(root_path, n) for s, n in zip(ids, LIST_NAMES)})


def _nyudv2_report(staging, out_dir, lists):
    """Frames per split and mask pixels per class index, read from the staged masks."""
    tmp_of = {final: tmp for tmp, final in staging.pending}
    report = ConversionReport('NYUDv2')
    for split, ids in lists.items():
        report.add_frames(split, len(ids))
        counts = np.zeros(256, np.int64)
        for frame_id in ids:
            final = osp.abspath(osp.join(out_dir, 'masks', frame_id + '.png'))
            with Image.open(tmp_of[final]) as im:
                counts += np.bincount(np.asarray(im).ravel(), minlength=256)
        for c in np.flatnonzero(counts):
            name = f'ignore ({IGNORE_INDEX})' if c == IGNORE_INDEX else f'class {c}'
            report.add_object(split, name, int(counts[c]))
    report.notes.append(f'objects: mask pixels per class index (0-{NUM_CLASSES - 1}, '
                        f'{IGNORE_INDEX} = ignore)')
    return report


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------


def create_nyudv2_infos(root_path, out_dir, extra_tag='nyudv2', mat_path=None, splits_path=None,
                        mapping_path=None, depth_key='depths', allow_split_overlap=False):
    """Convert NYUDv2 (official .mat release or extracted folder) to the extracted layout.

    Args:
        root_path (str): Either a folder holding ``nyu_depth_v2_labeled.mat``, ``splits.mat`` and
            ``classMapping40.mat`` (the helpers may also sit in ``root_path/official``), or the
            path of the .mat itself, or an extracted folder with ``train.txt``/``val.txt``.
        out_dir (str): Output folder (created if missing); must not lie inside ``root_path``.
        extra_tag (str): Name shown in the progress bar. The output file names are fixed.
        mat_path (str, optional): Path of ``nyu_depth_v2_labeled.mat`` (selects the .mat input).
        splits_path (str, optional): Path of ``splits.mat``.
        mapping_path (str, optional): Path of ``classMapping40.mat``.
        depth_key (str): .mat dataset used for depth: ``'depths'`` (inpainted, default) or
            ``'rawDepths'`` (raw, 0 where missing).
        allow_split_overlap (bool): Extracted layout only: accept frames listed in both
            ``train.txt`` and ``val.txt`` (an overfitting sample, such as the one bundled with
            the tests); the report notes it. Default: False (an error).

    Returns:
        dict: ``{'train': path of train.txt, 'val': path of val.txt, 'report': path of
        conversion_report.json}`` (frames per split, mask pixels per class).

    Raises:
        DatasetFormatError: If the input is neither layout, or a file is missing, unreadable or
            malformed (wrong shape or dtype, label or mask value out of range, split index out
            of range of the .mat, not UTF-8, a decompression-bomb PNG header, ...), a split list
            is empty, lists a frame twice, or shares a frame with the other list. The message
            names the offending file. The previous output stays as it was then.
        ValueError: If ``out_dir`` lies inside the input dataset folder.
    """
    if mat_path is None and osp.isfile(root_path) and root_path.endswith('.mat'):
        mat_path, root_path = root_path, osp.dirname(osp.abspath(root_path))
    if not osp.isdir(root_path):
        raise DatasetFormatError(root_path, 'dataset folder not found')
    if mat_path is None and osp.isfile(osp.join(root_path, MAT_NAME)):
        mat_path = osp.join(root_path, MAT_NAME)
    list_paths = [osp.join(root_path, n) for n in LIST_NAMES]

    if mat_path is not None:
        if not osp.isfile(mat_path):
            raise DatasetFormatError(mat_path, f'{MAT_NAME} not found')
        splits_path = _find_helper(root_path, SPLITS_NAME, splits_path)
        mapping_path = _find_helper(root_path, MAPPING_NAME, mapping_path)
        check_output_outside(out_dir, root_path)
        check_output_outside(out_dir, osp.dirname(osp.abspath(mat_path)))
    elif any(osp.isfile(p) for p in list_paths):
        for p in list_paths:
            if not osp.isfile(p):
                raise DatasetFormatError(p, 'split list missing (an extracted NYUDv2 folder '
                                         f'needs both {" and ".join(LIST_NAMES)})')
        check_output_outside(out_dir, root_path)
    else:
        raise DatasetFormatError(root_path, f'not a NYUDv2 folder: neither {MAT_NAME} (official '
                                 f'release, with {SPLITS_NAME} and {MAPPING_NAME}) nor '
                                 f'{" and ".join(LIST_NAMES)} (extracted layout) found')

    staging = Staging()
    try:
        if mat_path is not None:
            lists = _convert_mat(mat_path, splits_path, mapping_path, out_dir, staging,
                                 extra_tag, depth_key)
        else:
            lists = _convert_extracted(root_path, out_dir, staging, extra_tag,
                                       allow_split_overlap)
        paths = _write_lists(staging, out_dir, lists)
        report = _nyudv2_report(staging, out_dir, lists)
        shared = sorted(set(lists['train']) & set(lists['val']))
        if shared:
            report.notes.append(f'{len(shared)} frame(s) in both train and val '
                                '(allow_split_overlap=True)')
        paths['report'] = osp.join(out_dir, REPORT_NAME)
        staged_json(staging, report.to_dict(), paths['report'])
        staging.commit()
    except BaseException:
        staging.abort()
        raise
    return paths
