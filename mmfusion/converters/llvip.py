"""Convert LLVIP (visible/infrared paired pedestrian detection) to COCO-style json.

Dataset: X. Jia, C. Zhu, M. Li, W. Tang, W. Zhou, "LLVIP: A Visible-infrared Paired Dataset for
Low-light Vision", ICCV Workshops 2021. https://bupt-ai-cz.github.io/LLVIP/ . Research use only
(the dataset's non-commercial licence); cite the paper.

Official layout read (``root_path`` is the ``LLVIP`` folder)::

    LLVIP/
        visible/{train,test}/<id>.jpg     RGB, 1280x1024
        infrared/{train,test}/<id>.jpg    thermal, stored as 3-channel JPEG, same size
        Annotations/<id>.xml              Pascal VOC, one file for both modalities

Every ``<id>.jpg`` in ``visible/<split>`` must have a partner of the same name in
``infrared/<split>`` (and vice versa) and an ``Annotations/<id>.xml``. Ids must be numeric
(as in the official release: ``010001``, ``190001``, ...). Hidden files and files not ending in
``.jpg`` are ignored.

Output, one file per split, ``{out_dir}/{extra_tag}_infos_{split}.json``, in COCO detection
format (readable by ``pycocotools.coco.COCO`` and mmdet's ``CocoDataset``):

- ``images``: ``{id, file_name, infrared_file_name, width, height, llvip_id}`` with ``id`` the
  integer value of the file stem (``'010005'`` -> ``10005``; unique across splits),
  ``file_name = 'visible/<split>/<id>.jpg'`` and ``infrared_file_name =
  'infrared/<split>/<id>.jpg'``, both relative to the LLVIP root (use it as ``data_root``).
  ``width``/``height`` come from the xml ``<size>`` and are checked against both image headers.
- ``annotations``: ``{id, image_id, category_id: 1, bbox: [x, y, w, h], area, iscrowd: 0,
  truncated, difficult}``. Box convention: the VOC corners are taken as continuous pixel
  coordinates, ``x = xmin``, ``y = ymin``, ``w = xmax - xmin``, ``h = ymax - ymin`` (no ``+ 1``;
  LLVIP boxes touching the right/bottom border have ``xmax == width`` / ``ymax == height``),
  ``area = w * h``. Integer coordinates stay integers. ``truncated`` and ``difficult`` are the
  VOC flags (0 when absent); they are extra keys only, ``iscrowd`` is always 0. Annotation ids
  run from 1 in (image id, object order) order.
- ``categories``: ``[{id: 1, name: 'person'}]``.
- ``info``: a short description naming the dataset and the split.

Box policy: boxes are never clipped. A box with ``xmax <= xmin`` or ``ymax <= ymin``, or one
reaching outside ``[0, width] x [0, height]``, is an error naming the xml and the object index.

The converter never modifies the dataset, refuses an output folder inside it, validates every
split completely before writing anything, and commits all json files together (the previous
output stays intact on any error). ``conversion_report.json`` lists the frames and boxes per
split and class.
"""
import os.path as osp

from tqdm import tqdm

from ._io import DatasetFormatError, check_output_outside
from ._voc import (coco_annotations, coco_report, image_size, list_stems, parse_voc,
                   write_coco_outputs)

__all__ = ['create_llvip_infos', 'CLASSES']

CLASSES = ('person', )
_CAT_ID = {name: i + 1 for i, name in enumerate(CLASSES)}
_MODALITIES = ('visible', 'infrared')
_IMG_EXT = '.jpg'


def _collect_split(root_path, split):
    """Validate one split and build its COCO dict (nothing is written here)."""
    stems = {}
    for modality in _MODALITIES:
        stems[modality] = list_stems(
            osp.join(root_path, modality, split), _IMG_EXT, 'split folder')
    vis, ir = set(stems['visible']), set(stems['infrared'])
    unpaired = (('visible', 'infrared', vis - ir), ('infrared', 'visible', ir - vis))
    for have, lack, missing in unpaired:
        if missing:
            stem = sorted(missing)[0]
            raise DatasetFormatError(
                osp.join(root_path, have, split, stem + _IMG_EXT),
                f'has no {lack} partner {osp.join(root_path, lack, split, stem + _IMG_EXT)} '
                f'({len(missing)} unpaired {have} image(s) in split {split!r})')
    if not vis:
        raise DatasetFormatError(osp.join(root_path, 'visible', split), 'split has no images')
    ann_dir = osp.join(root_path, 'Annotations')
    if not osp.isdir(ann_dir):
        raise DatasetFormatError(ann_dir, 'annotation folder is missing')

    images, annotations = [], []
    for stem in tqdm(sorted(vis), desc=f'LLVIP {split}', unit='img'):
        vis_rel = f'visible/{split}/{stem}{_IMG_EXT}'
        ir_rel = f'infrared/{split}/{stem}{_IMG_EXT}'
        if not stem.isdigit():
            raise DatasetFormatError(
                osp.join(root_path, vis_rel), 'LLVIP image names must be numeric ids')
        xml_path = osp.join(ann_dir, stem + '.xml')
        if not osp.isfile(xml_path):
            raise DatasetFormatError(
                xml_path, f'annotation is missing for {osp.join(root_path, vis_rel)}')
        width, height, objects, _ = parse_voc(xml_path, _CAT_ID, 'LLVIP')
        for rel in (vis_rel, ir_rel):
            path = osp.join(root_path, rel)
            actual = image_size(path)
            if actual != (width, height):
                raise DatasetFormatError(
                    path, f'image is {actual[0]}x{actual[1]} but {xml_path} says '
                    f'{width}x{height}')
        image_id = int(stem)
        images.append(dict(
            id=image_id,
            file_name=vis_rel,
            infrared_file_name=ir_rel,
            width=width,
            height=height,
            llvip_id=stem))
        annotations.extend(
            coco_annotations(objects, image_id, _CAT_ID, len(annotations) + 1))
    return dict(
        info=dict(
            description=f'LLVIP {split} split (Jia et al., ICCV Workshops 2021), '
            'converted by mmfusion.converters.llvip'),
        images=images,
        annotations=annotations,
        categories=[dict(id=i, name=name) for name, i in _CAT_ID.items()])


def create_llvip_infos(root_path, out_dir, extra_tag='llvip', splits=('train', 'test')):
    """Write COCO-style info files for LLVIP with paired visible/infrared paths.

    All splits are read and validated first; the json files are written (atomically) only if
    every split is valid, so an error leaves no output behind.

    Args:
        root_path (str): The ``LLVIP`` folder holding ``visible/``, ``infrared/`` and
            ``Annotations/``. It is only read.
        out_dir (str): Folder for the output json files (created if missing). It must not lie
            inside ``root_path``.
        extra_tag (str): Prefix of the output names. Defaults to ``'llvip'``.
        splits (Sequence[str]): Splits to convert. Defaults to ``('train', 'test')``.

    Returns:
        dict: ``{split: path of the written json, 'report': path of conversion_report.json}``.

    Raises:
        ValueError: If ``out_dir`` lies inside ``root_path``.
        DatasetFormatError: (a ``ValueError``; the message starts with the offending path) if a
            split folder or the ``Annotations`` folder is missing, a split is empty, an image
            has no partner in the other modality, an image has no xml, an xml is malformed or
            lacks ``<size>``/``<bndbox>`` fields, a value is not numeric or not finite, a class
            is not ``person``, a box has non-positive size or leaves the image, an image header
            is unreadable or claims a decompression-bomb size, an image's actual size differs
            from its xml ``<size>``, or two images share an id after removing leading zeros
            (``010005`` and ``10005``, in one split or in two).
    """
    if isinstance(splits, str):
        splits = (splits, )
    check_output_outside(out_dir, root_path)
    if not osp.isdir(root_path):
        raise DatasetFormatError(root_path, 'LLVIP root folder is missing')
    infos = {split: _collect_split(root_path, split) for split in splits}
    _check_unique_ids(root_path, infos)
    report = coco_report('LLVIP', infos)
    return write_coco_outputs(out_dir, extra_tag, infos, report)


def _check_unique_ids(root_path, infos):
    """Refuse two images with the same integer id (``010005`` and ``10005``), in any splits."""
    seen = {}
    for split, info in infos.items():
        for image in info['images']:
            path = osp.join(root_path, image['file_name'])
            if image['id'] in seen:
                raise DatasetFormatError(
                    path, f'image id {image["id"]} (from {image["llvip_id"]!r}) is also the id '
                    f'of {seen[image["id"]]}; ids must be unique across splits after removing '
                    'leading zeros')
            seen[image['id']] = path
