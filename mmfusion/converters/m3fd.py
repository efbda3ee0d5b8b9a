"""Convert M3FD (visible/infrared paired detection) to COCO-style json with paired paths.

Dataset: J. Liu, X. Fan, Z. Huang, G. Wu, R. Liu, W. Zhong, Z. Luo, "Target-aware Dual
Adversarial Learning and a Multi-scenario Multi-Modality Benchmark to Fuse Infrared and Visible
for Object Detection", CVPR 2022 (TarDAL). https://github.com/JinyuanLiu-CV/TarDAL . Research
use only under the dataset's terms; cite the paper.

Layouts read (``root_path`` is the ``M3FD`` folder); either the flat detection release (4,200
pairs, ids ``00000``-``04199``)::

    M3FD/
        Annotation/<id>.xml     Pascal VOC, one file for both modalities
        Ir/<id>.png             infrared, 1024x768 in the release
        Vis/<id>.png            visible, same size

or the per-scene layout::

    M3FD/<Scenario>/<Scene>/{Annotation/<id>.xml, Ir/<id>.png, Vis/<id>.png}

The flat layout is used when ``root_path`` holds any of ``Annotation``, ``Ir`` or ``Vis``;
otherwise every non-hidden ``<Scenario>/<Scene>`` folder two levels down must hold all three
(other files at those levels are ignored). In each ``Vis``/``Ir`` folder, files ending in
``.png`` (not hidden) are the frames; every ``Vis/<id>.png`` needs an ``Ir/<id>.png`` of the same
name (and vice versa) and an ``Annotation/<id>.xml``. Xml files without frames are ignored.
Classes: ``People, Car, Bus, Motorcycle, Lamp, Truck`` (category ids 1-6 in this order); any
other ``<name>`` is an error.

Split rule (M3FD has no official split): frames are grouped by scene (``'<Scenario>/<Scene>'``;
the flat layout is one group). In each group of ``n`` frames, every frame gets the key
``sha256(f'{seed}:{scene}/{id}')`` (hex digest; for the flat layout ``scene`` is ``''``, so the
key text is ``f'{seed}:/{id}'``); frames are ordered by ``(key, id)`` and the first
``floor(val_ratio * n + 0.5)`` go to ``val``, the rest to ``train``. The rule depends only on the
ids, the scene names and ``seed`` (not on the Python/numpy version or on file-system order), so it
is reproducible and adding a scene leaves the other scenes' split unchanged. A scene too small
for ``val_ratio`` gives no val frames; a split left empty by the rule is an error, except
``val`` with ``val_ratio=0`` (written empty, as asked).

Output, ``{out_dir}/{extra_tag}_infos_{train,val}.json``, in COCO detection format (readable by
``pycocotools.coco.COCO`` and mmdet's ``CocoDataset``):

- ``images``: ``{id, file_name, infrared_file_name, width, height, scene, m3fd_id}``.
  ``file_name`` is ``'[<Scenario>/<Scene>/]Vis/<id>.png'`` and ``infrared_file_name`` the
  ``Ir`` partner, both relative to ``root_path`` (use it as ``data_root``); ``scene`` is
  ``'<Scenario>/<Scene>'`` (``''`` in the flat layout); ``m3fd_id`` is the file stem. ``id``
  runs from 1 over all frames of all splits in ``(scene, m3fd_id)`` order (stems may repeat
  across scenes, so they are not used as ids). ``width``/``height`` come from the xml ``<size>``
  and are checked against both image headers. Images are listed in ``(scene, m3fd_id)`` order.
- ``annotations``: ``{id, image_id, category_id, bbox: [x, y, w, h], area, iscrowd: 0,
  truncated, difficult}`` with the LLVIP converter's box convention (``x = xmin``, ``w = xmax -
  xmin``, no ``+ 1``; integers stay integers; never clipped; a degenerate box or one leaving
  ``[0, width] x [0, height]`` is an error). Ids run from 1 within each file.
- ``categories``: ``[{id: 1, name: 'People'}, ..., {id: 6, name: 'Truck'}]``.

Errors are :class:`~mmfusion.converters._io.DatasetFormatError` (a ``ValueError`` whose message
starts with the offending path). The converter never modifies the dataset, refuses an output
folder inside it, validates everything before writing, and commits all json files together (the
previous output stays intact on any error). ``conversion_report.json`` lists the frames and
boxes per split and class.
"""
import hashlib
import os
import os.path as osp

from tqdm import tqdm

from ._io import DatasetFormatError, check_output_outside
from ._voc import (coco_annotations, coco_report, image_size, list_stems, parse_voc,
                   write_coco_outputs)

__all__ = ['create_m3fd_infos', 'CLASSES']

CLASSES = ('People', 'Car', 'Bus', 'Motorcycle', 'Lamp', 'Truck')
_CAT_ID = {name: i + 1 for i, name in enumerate(CLASSES)}
_SUBDIRS = ('Annotation', 'Ir', 'Vis')
_IMG_EXT = '.png'


def _subfolders(folder):
    return sorted(
        name for name in os.listdir(folder)
        if not name.startswith('.') and osp.isdir(osp.join(folder, name)))


def _find_scenes(root_path):
    """``[(scene, folder)]``: ``('', root)`` for the flat layout, else every Scenario/Scene."""
    if any(osp.exists(osp.join(root_path, sub)) for sub in _SUBDIRS):
        return [('', root_path)]
    scenes = []
    for scenario in _subfolders(root_path):
        for scene in _subfolders(osp.join(root_path, scenario)):
            scenes.append((f'{scenario}/{scene}', osp.join(root_path, scenario, scene)))
    if not scenes:
        raise DatasetFormatError(
            root_path, 'no M3FD layout found: expected Annotation/, Ir/, Vis/ or '
            '<Scenario>/<Scene>/{Annotation,Ir,Vis}/')
    return scenes


def _collect_scene(root_path, scene, folder):
    """Validate one scene folder; returns ``[(stem, vis_rel, ir_rel, w, h, objects)]``."""
    prefix = f'{scene}/' if scene else ''
    vis = set(list_stems(osp.join(folder, 'Vis'), _IMG_EXT))
    ir = set(list_stems(osp.join(folder, 'Ir'), _IMG_EXT))
    for have, lack, missing in (('Vis', 'Ir', vis - ir), ('Ir', 'Vis', ir - vis)):
        if missing:
            stem = sorted(missing)[0]
            raise DatasetFormatError(
                osp.join(folder, have, stem + _IMG_EXT),
                f'has no {lack} partner {osp.join(folder, lack, stem + _IMG_EXT)} '
                f'({len(missing)} unpaired {have} image(s) in {folder})')
    ann_dir = osp.join(folder, 'Annotation')
    if not osp.isdir(ann_dir):
        raise DatasetFormatError(ann_dir, 'annotation folder is missing')
    if not vis:
        raise DatasetFormatError(osp.join(folder, 'Vis'), 'folder has no .png images')
    frames = []
    for stem in tqdm(sorted(vis), desc=f'M3FD {scene or "."}', unit='img', leave=False):
        vis_rel = f'{prefix}Vis/{stem}{_IMG_EXT}'
        ir_rel = f'{prefix}Ir/{stem}{_IMG_EXT}'
        xml_path = osp.join(ann_dir, stem + '.xml')
        if not osp.isfile(xml_path):
            raise DatasetFormatError(
                xml_path, f'annotation is missing for {osp.join(root_path, vis_rel)}')
        width, height, objects, _ = parse_voc(xml_path, _CAT_ID, 'M3FD')
        for rel in (vis_rel, ir_rel):
            path = osp.join(root_path, rel)
            actual = image_size(path)
            if actual != (width, height):
                raise DatasetFormatError(
                    path, f'image is {actual[0]}x{actual[1]} but {xml_path} says '
                    f'{width}x{height}')
        frames.append((stem, vis_rel, ir_rel, width, height, objects))
    return frames


def _val_stems(scene, stems, val_ratio, seed):
    """The stems of one scene that go to ``val`` (see the module docstring)."""
    def key(stem):
        return hashlib.sha256(f'{seed}:{scene}/{stem}'.encode()).hexdigest(), stem

    n_val = int(val_ratio * len(stems) + 0.5)
    return set(sorted(stems, key=key)[:n_val])


def create_m3fd_infos(root_path, out_dir, extra_tag='m3fd', val_ratio=0.2, seed=0):
    """Write COCO-style train/val info files for M3FD with paired visible/infrared paths.

    Args:
        root_path (str): The ``M3FD`` folder, flat or per-scene layout (module docstring). It
            is only read.
        out_dir (str): Folder for the output json files (created if missing). It must not lie
            inside ``root_path``.
        extra_tag (str): Prefix of the output names. Defaults to ``'m3fd'``.
        val_ratio (float): Fraction of each scene put in ``val``, in ``[0, 1]``. Defaults to 0.2.
        seed (int | str): Seed of the split rule (module docstring). Defaults to 0.

    Returns:
        dict: ``{'train': path, 'val': path, 'report': path}`` of the written json files.

    Raises:
        ValueError: If ``out_dir`` lies inside ``root_path`` or ``val_ratio`` is out of range.
            (:class:`DatasetFormatError` is one, see below.)
        DatasetFormatError: If the root or a ``Vis``/``Ir``/``Annotation`` folder is missing, a
            scene has no images, an image has no partner in the other modality or no xml, an
            xml is malformed or lacks fields, a class is not one of the six, a box is
            degenerate or leaves the image, an image's size differs from its xml ``<size>``, or
            an image header is unreadable or claims a decompression-bomb size, or the split
            rule leaves a split empty (except ``val`` with ``val_ratio=0``).
    """
    if not 0 <= val_ratio <= 1:
        raise ValueError(f'val_ratio must lie in [0, 1], got {val_ratio}')
    check_output_outside(out_dir, root_path)
    if not osp.isdir(root_path):
        raise DatasetFormatError(root_path, 'M3FD root folder is missing')
    infos = {split: dict(
        info=dict(
            description=f'M3FD {split} split (Liu et al., CVPR 2022; seeded per-scene split, '
            f'val_ratio={val_ratio}, seed={seed}), converted by mmfusion.converters.m3fd'),
        images=[],
        annotations=[],
        categories=[dict(id=i, name=name) for name, i in _CAT_ID.items()]) for split in (
            'train', 'val')}
    image_id = 0
    for scene, folder in _find_scenes(root_path):
        frames = _collect_scene(root_path, scene, folder)
        val = _val_stems(scene, [f[0] for f in frames], val_ratio, seed)
        for stem, vis_rel, ir_rel, width, height, objects in frames:
            image_id += 1
            info = infos['val' if stem in val else 'train']
            info['images'].append(dict(
                id=image_id,
                file_name=vis_rel,
                infrared_file_name=ir_rel,
                width=width,
                height=height,
                scene=scene,
                m3fd_id=stem))
            info['annotations'].extend(coco_annotations(
                objects, image_id, _CAT_ID, len(info['annotations']) + 1))
    for split, info in infos.items():
        wanted = val_ratio if split == 'val' else 1 - val_ratio
        if wanted > 0 and not info['images']:
            raise DatasetFormatError(
                root_path, f'split {split!r} is empty with val_ratio={val_ratio} (each scene '
                f'sends floor(val_ratio * n + 0.5) of its n frames to val); pass val_ratio=0 '
                'for no val split')
    report = coco_report('M3FD', infos)
    return write_coco_outputs(out_dir, extra_tag, infos, report)
