"""Convert the aligned FLIR ADAS subset (RGB/thermal pairs) to COCO-style json.

Dataset: FLIR ADAS thermal dataset (Teledyne FLIR, https://www.flir.com/oem/adas/), aligned
subset as distributed with H. Zhang, E. Fromont, S. Lefevre, B. Avignon, "Multispectral fusion
for object detection with cyclic fuse-and-refine blocks", ICIP 2020. Research use only under
FLIR's terms; cite both.

Layout read (``root_path`` is the folder holding ``align/``)::

    align/
        JPEGImages/FLIR_<n>_PreviewData.jpeg   thermal, 640x512
        JPEGImages/FLIR_<n>_RGB.jpg            RGB partner (its size may differ)
        Annotations/FLIR_<n>_PreviewData.xml   Pascal VOC, drawn on the thermal frame; the
                                               root tag is ``annotation`` or ``Annotation``
        align_train.txt                        one id a line -> split ``train``
        align_validation.txt                   one id a line -> split ``val``

Split files: a line is ``FLIR_<n>`` or ``FLIR_<n>_PreviewData`` (both accepted; ``<n>`` digits,
surrounding white space and blank lines ignored). An id listed twice, in one file or in both,
is an error. Frames not listed in either file are ignored.

Classes: ``person, bicycle, car`` (category ids 1-3). ``dog`` boxes (a few in the release) are
dropped and their number is logged; any other class is an error.

Output, ``{out_dir}/{extra_tag}_infos_{train,val}.json``, in COCO detection format:

- ``images``: ``{id, file_name, infrared_file_name, width, height, rgb_width, rgb_height,
  flir_id}``, sorted by ``id``. ``id`` is the integer ``<n>`` (unique across splits);
  ``file_name = 'align/JPEGImages/FLIR_<n>_RGB.jpg'`` and ``infrared_file_name =
  'align/JPEGImages/FLIR_<n>_PreviewData.jpeg'``, relative to ``root_path`` (use it as
  ``data_root``). ``width``/``height`` are the thermal frame's (the frame the boxes are drawn
  on): the xml ``<size>``, checked against the thermal image header. The RGB frame must exist
  and be readable; its header size is stored as ``rgb_width``/``rgb_height`` and is *not*
  required to match (boxes are in thermal pixel coordinates; resize the RGB frame to
  ``width x height`` before using the boxes on it). ``flir_id`` is ``'FLIR_<n>'`` as written
  in the file names (leading zeros kept).
- ``annotations``: ``{id, image_id, category_id, bbox: [x, y, w, h], area, iscrowd: 0,
  truncated, difficult}``, with the LLVIP converter's box convention (``x = xmin``, ``w = xmax -
  xmin``, no ``+ 1``; never clipped; a degenerate box or one leaving the thermal frame is an
  error). Ids run from 1 within each file, in (image id, object order) order.
- ``categories``: ``[{id: 1, name: 'person'}, {id: 2, name: 'bicycle'}, {id: 3, name: 'car'}]``.

Errors are :class:`~mmfusion.converters._io.DatasetFormatError` (a ``ValueError`` whose message
starts with the offending path). The converter never modifies the dataset, refuses an output
folder inside it, validates both splits completely before writing, and commits all json files
together (the previous output stays intact on any error). ``conversion_report.json`` lists the
frames and boxes per split and class and the dropped ``dog`` boxes.
"""
import os.path as osp
import re

from tqdm import tqdm

from ._io import DatasetFormatError, check_output_outside, open_text
from ._voc import coco_annotations, coco_report, image_size, parse_voc, write_coco_outputs

__all__ = ['create_flir_infos', 'CLASSES']

CLASSES = ('person', 'bicycle', 'car')
DROPPED_CLASSES = ('dog', )
_CAT_ID = {name: i + 1 for i, name in enumerate(CLASSES)}
_SPLIT_FILES = (('train', 'align_train.txt'), ('val', 'align_validation.txt'))
_LINE = re.compile(r'^(FLIR_(\d+))(?:_PreviewData)?$')


def _read_split(path):
    """``[(flir_id, number)]`` listed in one split file, in file order."""
    if not osp.isfile(path):
        raise DatasetFormatError(path, 'split file is missing')
    ids = []
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            match = _LINE.match(line)
            if match is None:
                raise DatasetFormatError(
                    path, f'line {lineno}: {line!r} is not FLIR_<n> or FLIR_<n>_PreviewData')
            ids.append((match.group(1), int(match.group(2))))
    return ids


def _collect_split(root_path, split, ids):
    """Validate one split and build its COCO dict; returns ``(coco dict, dropped count)``."""
    ann_dir = osp.join(root_path, 'align', 'Annotations')
    images, annotations, dropped = [], [], 0
    for flir_id, number in tqdm(sorted(ids, key=lambda x: x[1]), desc=f'FLIR {split}',
                                unit='img'):
        ir_rel = f'align/JPEGImages/{flir_id}_PreviewData.jpeg'
        rgb_rel = f'align/JPEGImages/{flir_id}_RGB.jpg'
        ir_path, rgb_path = osp.join(root_path, ir_rel), osp.join(root_path, rgb_rel)
        xml_path = osp.join(ann_dir, f'{flir_id}_PreviewData.xml')
        if not osp.isfile(ir_path):
            raise DatasetFormatError(ir_path, f'thermal frame of {flir_id} ({split}) is missing')
        if not osp.isfile(rgb_path):
            raise DatasetFormatError(rgb_path, f'RGB partner of {ir_path} is missing')
        if not osp.isfile(xml_path):
            raise DatasetFormatError(xml_path, f'annotation is missing for {ir_path}')
        width, height, objects, n_drop = parse_voc(
            xml_path, _CAT_ID, 'FLIR aligned', drop=DROPPED_CLASSES)
        dropped += n_drop
        actual = image_size(ir_path)
        if actual != (width, height):
            raise DatasetFormatError(
                ir_path, f'image is {actual[0]}x{actual[1]} but {xml_path} says '
                f'{width}x{height}')
        rgb_width, rgb_height = image_size(rgb_path)
        images.append(dict(
            id=number,
            file_name=rgb_rel,
            infrared_file_name=ir_rel,
            width=width,
            height=height,
            rgb_width=rgb_width,
            rgb_height=rgb_height,
            flir_id=flir_id))
        annotations.extend(coco_annotations(objects, number, _CAT_ID, len(annotations) + 1))
    coco = dict(
        info=dict(
            description=f'FLIR ADAS aligned {split} split (as distributed with Zhang et al., '
            'ICIP 2020), converted by mmfusion.converters.flir'),
        images=images,
        annotations=annotations,
        categories=[dict(id=i, name=name) for name, i in _CAT_ID.items()])
    return coco, dropped


def create_flir_infos(root_path, out_dir, extra_tag='flir'):
    """Write COCO-style train/val info files for aligned FLIR with paired RGB/thermal paths.

    Args:
        root_path (str): The folder holding ``align/`` (module docstring). It is only read.
        out_dir (str): Folder for the output json files (created if missing). It must not lie
            inside ``root_path``.
        extra_tag (str): Prefix of the output names. Defaults to ``'flir'``.

    Returns:
        dict: ``{'train': path, 'val': path, 'report': path}`` of the written json files.

    Raises:
        ValueError: If ``out_dir`` lies inside ``root_path``.
        DatasetFormatError: If the root, a split file, a listed thermal frame, its RGB partner
            or its xml is missing, a split file is not UTF-8 or lists no frame, a split line is
            not a FLIR id, an id is listed twice (in one file or in both), an xml
            is malformed or lacks fields, a class is not person/bicycle/car/dog, a box is
            degenerate or leaves the thermal frame, an image is unreadable, or the thermal
            frame's size differs from its xml ``<size>``, or an image header is unreadable or
            claims a decompression-bomb size.
    """
    check_output_outside(out_dir, root_path)
    if not osp.isdir(root_path):
        raise DatasetFormatError(root_path, 'FLIR root folder is missing')
    splits, seen = {}, {}
    for split, name in _SPLIT_FILES:
        path = osp.join(root_path, 'align', name)
        ids = _read_split(path)
        for flir_id, number in ids:
            if number in seen:
                raise DatasetFormatError(
                    path, f'{flir_id} is listed twice (also in {seen[number]})')
            seen[number] = path
        splits[split] = ids
        if not ids:
            raise DatasetFormatError(path, f'split {split!r} lists no frames')
    infos, dropped = {}, {}
    for split, ids in splits.items():
        infos[split], n_drop = _collect_split(root_path, split, ids)
        dropped[split] = {DROPPED_CLASSES[0]: n_drop}
    report = coco_report(
        'FLIR aligned', infos, dropped,
        reason=f'class not among the {len(CLASSES)} evaluated ({", ".join(CLASSES)})')
    return write_coco_outputs(out_dir, extra_tag, infos, report)
