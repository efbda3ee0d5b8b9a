"""Convert DroneVehicle (RGB/infrared paired drone-view vehicle detection) to COCO-style json.

Dataset: Y. Sun, B. Cao, P. Zhu, Q. Hu, "Drone-based RGB-Infrared Cross-Modality Vehicle
Detection via Uncertainty-Aware Learning", IEEE TCSVT 32(10), 2022.
https://github.com/VisDrone/DroneVehicle . Research use only; cite the paper.

Official layout read (``root_path`` holds the three split folders; ``X`` is the split name)::

    {train,val,test}/
        {X}img/<id>.jpg       RGB, 840x712 (a 100 px white border around a 640x512 frame)
        {X}imgr/<id>.jpg      infrared, same size and border
        {X}label/<id>.xml     VOC-style labels drawn on the RGB image
        {X}labelr/<id>.xml    VOC-style labels drawn on the infrared image

e.g. ``train/trainimg``, ``train/trainimgr``, ``train/trainlabel``, ``train/trainlabelr``.
Every ``<id>.jpg`` in ``{X}img`` must have a partner of the same name in ``{X}imgr`` (and vice
versa), both 840x712 (checked on the image headers; the xml ``<size>`` is not read), and an
``<id>.xml`` in the label folder chosen by ``label_modality``: ``'infrared'`` (default) reads
``{X}labelr``, ``'visible'`` reads ``{X}label``; the other label folder is not read. Ids must be
numeric (``00001``, ...). Hidden files and files not ending in ``.jpg`` are ignored, as are
xml files without an image.

Objects: each ``<object>`` has a ``<name>`` and either a ``<polygon>`` with ``<x1> <y1> ...
<x4> <y4>`` (the usual case; children are ordered by point index, a polygon given as text is
split on commas/whitespace) or a VOC ``<bndbox>`` (``xmin ymin xmax ymax``, taken as the
axis-aligned quadrilateral ``(xmin, ymin) (xmax, ymin) (xmax, ymax) (xmin, ymax)``). Optional
``<truncated>``/``<difficult>`` flags (0 when absent) are kept. Class names are stripped and
lower-cased, then mapped (:data:`CLASS_MAP`)::

    car -> car          truck, truvk -> truck          bus -> bus          van -> van
    freight car, freight_car, feright car, feright_car, feright -> freight_car
    *  -> object skipped (placeholder label found in a few raw files)

Any other name is an error naming the xml and the object index.

Crop and box rules:

- Both images are cropped to their interior ``[100, 740) x [100, 612)`` (640x512) with PIL and
  written as new JPEGs (quality :data:`JPEG_QUALITY`, no chroma subsampling; the image mode, RGB
  or L, is kept) to ``{out_dir}/{split}/rgb/<id>.jpg`` and ``{out_dir}/{split}/ir/<id>.jpg``.
  JPEG re-encoding is lossy, so the output equals the input interior up to a small error.
- Every coordinate is shifted by -100 px (continuous pixel coordinates, no ``+ 1``).
- ``polygon``: the 8 shifted numbers ``[x1, y1, ..., x4, y4]``, *not* clipped (it may reach
  outside the 640x512 image). ``rbox``: ``[cx, cy, w, h, angle]`` from
  ``cv2.minAreaRect`` of the shifted, unclipped polygon (OpenCV >= 4.5.1 convention: angle in
  degrees in ``(0, 90]``). Both are given for every annotation.
- ``bbox``: the min/max of the shifted polygon, clipped to ``[0, 640] x [0, 512]``, as
  ``[x, y, w, h]``; ``area = w * h``. A box whose clipped width or height is ``<= 0`` (it lay
  in the border or outside the frame, or the polygon was degenerate) is dropped; the number of
  dropped boxes is stored in ``info['num_dropped']``.

Output, one file per split, ``{out_dir}/{extra_tag}_infos_{split}.json``, in COCO detection
format (readable by ``pycocotools.coco.COCO``; use ``out_dir`` as ``data_root``):

- ``images``: ``{id, file_name, infrared_file_name, width: 640, height: 512,
  dronevehicle_id}`` with ``id = int(<id>)``, ``file_name = '<split>/rgb/<id>.jpg'``,
  ``infrared_file_name = '<split>/ir/<id>.jpg'`` (both relative to ``out_dir``).
- ``annotations``: ``{id, image_id, category_id, bbox, area, iscrowd: 0, polygon, rbox,
  truncated, difficult}``; ids run from 1 in (image id, object order) order.
- ``categories``: ``car 1, truck 2, bus 3, van 4, freight_car 5``.
- ``info``: description (dataset, split, label modality), ``label_modality``, ``num_dropped``.

Errors (:class:`DatasetFormatError`, a ``ValueError`` whose message starts with the offending
path): a split folder missing or empty, an image without its partner in the other modality, an
image that cannot be read or is not 840x712, a missing or malformed xml, an object without
``<name>`` or without ``<polygon>``/``<bndbox>``, a polygon without exactly 8 numbers, a
non-numeric or non-finite coordinate, an unknown class. ``ValueError`` if ``out_dir`` lies
inside ``root_path``.

The converter never modifies the dataset and validates every split (pairs, image headers, all
xml files) before writing anything. Outputs (images and json) are written to temporary names
beside their destinations and renamed into place with ``os.replace`` only after every file was
produced; on any error the temporary files (and folders the converter created) are removed.
"""
import json
import os.path as osp
import re
import xml.etree.ElementTree as ET

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from ._io import REPORT_NAME, DatasetFormatError, Staging, check_output_outside, staged_json
from ._voc import child_text, coco_report, flag, image_size, list_stems, number

__all__ = ['create_dronevehicle_infos', 'CLASSES', 'CLASS_MAP']

CLASSES = ('car', 'truck', 'bus', 'van', 'freight_car')
_CAT_ID = {name: i + 1 for i, name in enumerate(CLASSES)}
# raw name (stripped, lower-cased) -> class; None skips the object
CLASS_MAP = {
    'car': 'car',
    'truck': 'truck',
    'truvk': 'truck',
    'bus': 'bus',
    'van': 'van',
    'freight car': 'freight_car',
    'freight_car': 'freight_car',
    'feright car': 'freight_car',
    'feright_car': 'freight_car',
    'feright': 'freight_car',
    '*': None,
}
RAW_SIZE = (840, 712)
BORDER = 100
SIZE = (RAW_SIZE[0] - 2 * BORDER, RAW_SIZE[1] - 2 * BORDER)  # (640, 512)
JPEG_QUALITY = 95
_LABEL_MODALITIES = ('infrared', 'visible')
_IMG_EXT = '.jpg'
_POINT_TAG = re.compile(r'^([xy])(\d+)$')


def _folders(root_path, split):
    base = osp.join(root_path, split)
    return dict(
        rgb=osp.join(base, f'{split}img'),
        ir=osp.join(base, f'{split}imgr'),
        visible=osp.join(base, f'{split}label'),
        infrared=osp.join(base, f'{split}labelr'))


def _polygon(obj, xml_path, where):
    """Return the 8 raw polygon numbers of ``obj`` (from ``<polygon>`` or ``<bndbox>``)."""
    poly = obj.find('polygon')
    if poly is not None:
        children = list(poly)
        if children:
            matches = [_POINT_TAG.match(c.tag) for c in children]
            if all(matches):
                order = sorted(range(len(children)),
                               key=lambda i: (int(matches[i].group(2)), matches[i].group(1)))
                children = [children[i] for i in order]
            texts = [(c.text or '').strip() for c in children]
            names = [f'<{c.tag}>' for c in children]
        else:
            texts = [t for t in re.split(r'[\s,]+', poly.text or '') if t]
            names = [f'value {i}' for i in range(len(texts))]
        if len(texts) != 8:
            raise DatasetFormatError(
                xml_path, f'{where} <polygon> has {len(texts)} numbers, expected 8 '
                '(x1, y1, ..., x4, y4)')
        return [number(t, xml_path, f'{where} <polygon> {n}') for t, n in zip(texts, names)]
    box = obj.find('bndbox')
    if box is None:
        raise DatasetFormatError(xml_path, f'{where} has neither <polygon> nor <bndbox>')
    x0, y0, x1, y1 = (
        number(child_text(box, key, xml_path, f'{where} <bndbox>'), xml_path,
               f'{where} <bndbox> <{key}>') for key in ('xmin', 'ymin', 'xmax', 'ymax'))
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def _parse_xml(xml_path):
    """Read one DroneVehicle xml: a list of ``dict(name, points, truncated, difficult)``."""
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
        raise DatasetFormatError(xml_path, f'malformed xml ({e})') from None
    objects = []
    for idx, obj in enumerate(root.findall('object')):
        where = f'object {idx}'
        raw = child_text(obj, 'name', xml_path, where)
        key = raw.strip().lower()
        if key not in CLASS_MAP:
            raise DatasetFormatError(
                xml_path, f'{where} has unknown class {raw!r}; known names: {sorted(CLASS_MAP)}')
        points = _polygon(obj, xml_path, where)
        flags = {tag: flag(obj, tag, xml_path, where) for tag in ('truncated', 'difficult')}
        if CLASS_MAP[key] is None:
            continue
        objects.append(dict(name=CLASS_MAP[key], points=points, **flags))
    return objects


def _shift(value):
    return value - BORDER


def _annotation(obj):
    """COCO annotation fields for one object, or ``None`` if its clipped box is empty."""
    poly = [_shift(v) for v in obj['points']]
    xs, ys = poly[0::2], poly[1::2]
    x0, y0 = max(min(xs), 0), max(min(ys), 0)
    x1, y1 = min(max(xs), SIZE[0]), min(max(ys), SIZE[1])
    w, h = x1 - x0, y1 - y0
    if w <= 0 or h <= 0:
        return None
    (cx, cy), (rw, rh), angle = cv2.minAreaRect(np.asarray(poly, np.float32).reshape(4, 2))
    return dict(
        category_id=_CAT_ID[obj['name']],
        bbox=[x0, y0, w, h],
        area=w * h,
        iscrowd=0,
        polygon=poly,
        rbox=[float(cx), float(cy), float(rw), float(rh), float(angle)],
        truncated=obj['truncated'],
        difficult=obj['difficult'])


def _collect_split(root_path, split, label_modality):
    """Validate one split; return ``(coco dict, [(stem, rgb path, ir path)])``."""
    dirs = _folders(root_path, split)
    rgb = set(list_stems(dirs['rgb'], '.jpg', 'split folder'))
    ir = set(list_stems(dirs['ir'], '.jpg', 'split folder'))
    for have, lack, missing in (('rgb', 'ir', rgb - ir), ('ir', 'rgb', ir - rgb)):
        if missing:
            stem = sorted(missing)[0]
            raise DatasetFormatError(
                osp.join(dirs[have], stem + _IMG_EXT),
                f'has no partner {osp.join(dirs[lack], stem + _IMG_EXT)} '
                f'({len(missing)} unpaired image(s) in {dirs[have]})')
    if not rgb:
        raise DatasetFormatError(dirs['rgb'], 'split has no images')
    label_dir = dirs[label_modality]
    if not osp.isdir(label_dir):
        raise DatasetFormatError(label_dir, 'label folder is missing')

    images, annotations, sources = [], [], []
    num_dropped, dropped_by_class = 0, {}
    ids = {}
    for stem in tqdm(sorted(rgb), desc=f'DroneVehicle {split} (check)', unit='img'):
        rgb_path = osp.join(dirs['rgb'], stem + _IMG_EXT)
        ir_path = osp.join(dirs['ir'], stem + _IMG_EXT)
        if not stem.isdigit():
            raise DatasetFormatError(rgb_path, 'DroneVehicle image names must be numeric ids')
        image_id = int(stem)
        if image_id in ids:
            raise DatasetFormatError(rgb_path, f'id {image_id} is also used by {ids[image_id]}')
        ids[image_id] = rgb_path
        for path in (rgb_path, ir_path):
            actual = image_size(path)
            if actual != RAW_SIZE:
                raise DatasetFormatError(
                    path, f'image is {actual[0]}x{actual[1]}, DroneVehicle images are '
                    f'{RAW_SIZE[0]}x{RAW_SIZE[1]} (640x512 with a {BORDER} px border)')
        xml_path = osp.join(label_dir, stem + '.xml')
        if not osp.isfile(xml_path):
            raise DatasetFormatError(xml_path, f'annotation is missing for {rgb_path}')
        objects = _parse_xml(xml_path)
        images.append(dict(
            id=image_id,
            file_name=f'{split}/rgb/{stem}{_IMG_EXT}',
            infrared_file_name=f'{split}/ir/{stem}{_IMG_EXT}',
            width=SIZE[0],
            height=SIZE[1],
            dronevehicle_id=stem))
        sources.append((stem, rgb_path, ir_path))
        for obj in objects:
            ann = _annotation(obj)
            if ann is None:
                num_dropped += 1
                dropped_by_class[obj['name']] = dropped_by_class.get(obj['name'], 0) + 1
                continue
            annotations.append(dict(id=len(annotations) + 1, image_id=image_id, **ann))
    info = dict(
        description=f'DroneVehicle {split} split, {label_modality} labels (Sun et al., IEEE '
        'TCSVT 2022), border cropped to 640x512, converted by mmfusion.converters.dronevehicle',
        label_modality=label_modality,
        num_dropped=num_dropped)
    coco = dict(
        info=info,
        images=images,
        annotations=annotations,
        categories=[dict(id=i, name=name) for name, i in _CAT_ID.items()])
    return coco, sources, dropped_by_class


def _save_crop(staging, src, final):
    """Crop the border of ``src`` and stage it as a JPEG for ``final``."""
    image_size(src)  # refuses decompression bombs before decoding
    try:
        with Image.open(src) as img:
            img.load()
            if img.mode not in ('RGB', 'L'):
                img = img.convert('RGB')
            crop = img.crop((BORDER, BORDER, BORDER + SIZE[0], BORDER + SIZE[1]))
    except OSError as e:
        raise DatasetFormatError(src, f'cannot decode image ({e})') from None
    crop.save(staging.tmp_for(final), format='JPEG', quality=JPEG_QUALITY, subsampling=0)


def create_dronevehicle_infos(root_path, out_dir, extra_tag='dronevehicle',
                              label_modality='infrared', splits=('train', 'val', 'test')):
    """Crop DroneVehicle's border and write COCO-style info files with paired RGB/IR paths.

    All splits are read and validated first; the cropped images and json files are written
    (each to a temporary name, then renamed) only if every split is valid.

    Args:
        root_path (str): Folder holding ``train/``, ``val/``, ``test/`` in the official layout.
            It is only read.
        out_dir (str): Output folder (created if missing), the ``data_root`` of the output. It
            must not lie inside ``root_path``.
        extra_tag (str): Prefix of the json names. Defaults to ``'dronevehicle'``.
        label_modality (str): ``'infrared'`` (default) reads ``{X}labelr``, ``'visible'`` reads
            ``{X}label``.
        splits (Sequence[str]): Splits to convert. Defaults to ``('train', 'val', 'test')``.

    Returns:
        dict: ``{split: path of the written json, 'report': path of conversion_report.json}``
        (boxes per split and class, boxes dropped by the crop).

    Raises:
        ValueError: If ``out_dir`` lies inside ``root_path`` or ``label_modality`` is unknown.
        DatasetFormatError: If the dataset is malformed (see the module docstring).
    """
    if label_modality not in _LABEL_MODALITIES:
        raise ValueError(f'label_modality must be one of {_LABEL_MODALITIES}, '
                         f'got {label_modality!r}')
    if isinstance(splits, str):
        splits = (splits, )
    check_output_outside(out_dir, root_path)
    if not osp.isdir(root_path):
        raise DatasetFormatError(root_path, 'DroneVehicle root folder is missing')
    collected = {split: _collect_split(root_path, split, label_modality) for split in splits}
    report = coco_report(
        'DroneVehicle', {s: c[0] for s, c in collected.items()},
        {s: c[2] for s, c in collected.items()},
        reason='box empty after cropping the border (wholly in the border or outside the frame)')

    staging = Staging()
    out_paths = {}
    try:
        for split, (coco, sources, _) in collected.items():
            for stem, rgb_path, ir_path in tqdm(
                    sources, desc=f'DroneVehicle {split} (crop)', unit='pair'):
                _save_crop(staging, rgb_path, osp.join(out_dir, split, 'rgb', stem + _IMG_EXT))
                _save_crop(staging, ir_path, osp.join(out_dir, split, 'ir', stem + _IMG_EXT))
            path = osp.join(out_dir, f'{extra_tag}_infos_{split}.json')
            with open(staging.tmp_for(path), 'w') as f:
                json.dump(coco, f)
            out_paths[split] = path
        out_paths['report'] = osp.join(out_dir, REPORT_NAME)
        staged_json(staging, report.to_dict(), out_paths['report'])
        staging.commit()
    except BaseException:
        staging.abort()
        raise
    report.log_summary()
    return out_paths
