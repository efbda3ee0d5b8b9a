"""Pascal VOC reading and COCO json writing shared by the RGB+infrared converters (LLVIP, M3FD,
FLIR, DroneVehicle).

Every function raises :class:`~mmfusion.converters._io.DatasetFormatError` naming the offending
file. Coordinates are kept as in the xml (pixels; integers stay ``int``).
"""
import math
import os
import os.path as osp
import xml.etree.ElementTree as ET

from ._io import (REPORT_NAME, ConversionReport, DatasetFormatError,  # noqa: F401 (re-exported)
                  image_size, write_json_outputs)


def number(text, xml_path, what):
    """Parse a VOC coordinate or size; integers stay ``int``."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise DatasetFormatError(xml_path, f'{what} is not a number: {text!r}') from None
    if not math.isfinite(value):
        raise DatasetFormatError(xml_path, f'{what} is not finite: {text!r}')
    return int(value) if value.is_integer() else value


def child_text(elem, tag, xml_path, where):
    child = elem.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise DatasetFormatError(xml_path, f'{where} has no <{tag}>')
    return child.text.strip()


def flag(obj, tag, xml_path, where):
    child = obj.find(tag)
    if child is None or child.text is None or not child.text.strip():
        return 0
    value = number(child.text.strip(), xml_path, f'{where} <{tag}>')
    if value not in (0, 1):
        raise DatasetFormatError(xml_path, f'{where} <{tag}> must be 0 or 1, got {value}')
    return int(value)


def list_stems(folder, ext, what='folder'):
    """Sorted stems of the files ending in ``ext`` in ``folder`` (hidden files ignored).

    Raises:
        DatasetFormatError: If ``folder`` does not exist (``what`` names it in the message).
    """
    if not osp.isdir(folder):
        raise DatasetFormatError(folder, f'{what} is missing')
    return sorted(
        name[:-len(ext)] for name in os.listdir(folder)
        if name.endswith(ext) and not name.startswith('.')
        and osp.isfile(osp.join(folder, name)))


def parse_voc(xml_path, cat_ids, dataset, drop=()):
    """Read one Pascal VOC xml (the root tag may be ``annotation`` or ``Annotation``).

    Args:
        xml_path (str): The xml file.
        cat_ids (dict): ``{class name: category id}``; any other name is an error.
        dataset (str): Dataset name for error messages.
        drop (Sequence[str]): Class names whose objects are skipped (not validated further).

    Returns:
        tuple: ``(width, height, objects, dropped)``: ``objects`` a list of dicts with keys
        ``name``, ``xmin``, ``ymin``, ``xmax``, ``ymax``, ``truncated``, ``difficult``;
        ``dropped`` the number of skipped objects.
    """
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
        raise DatasetFormatError(xml_path, f'malformed xml ({e})') from None
    if root.tag.lower() != 'annotation':
        raise DatasetFormatError(xml_path, f'root tag is <{root.tag}>, not <annotation>')
    size = root.find('size')
    if size is None:
        raise DatasetFormatError(xml_path, 'annotation has no <size>')
    width = number(child_text(size, 'width', xml_path, '<size>'), xml_path, '<size> <width>')
    height = number(
        child_text(size, 'height', xml_path, '<size>'), xml_path, '<size> <height>')
    if not (isinstance(width, int) and isinstance(height, int)) or width <= 0 or height <= 0:
        raise DatasetFormatError(xml_path, f'invalid <size> {width}x{height}')
    objects, dropped = [], 0
    for idx, obj in enumerate(root.findall('object')):
        where = f'object {idx}'
        name = child_text(obj, 'name', xml_path, where)
        if name in drop:
            dropped += 1
            continue
        if name not in cat_ids:
            raise DatasetFormatError(
                xml_path, f'{where} has class {name!r}; {dataset} has only {list(cat_ids)}')
        box = obj.find('bndbox')
        if box is None:
            raise DatasetFormatError(xml_path, f'{where} has no <bndbox>')
        coords = {
            key: number(
                child_text(box, key, xml_path, f'{where} <bndbox>'), xml_path,
                f'{where} <bndbox> <{key}>')
            for key in ('xmin', 'ymin', 'xmax', 'ymax')
        }
        if coords['xmax'] <= coords['xmin'] or coords['ymax'] <= coords['ymin']:
            raise DatasetFormatError(xml_path, f'{where} has a box of non-positive size {coords}')
        if (coords['xmin'] < 0 or coords['ymin'] < 0 or coords['xmax'] > width
                or coords['ymax'] > height):
            raise DatasetFormatError(
                xml_path, f'{where} box {coords} lies outside the {width}x{height} image')
        objects.append(dict(
            name=name,
            truncated=flag(obj, 'truncated', xml_path, where),
            difficult=flag(obj, 'difficult', xml_path, where),
            **coords))
    return width, height, objects, dropped


def coco_annotations(objects, image_id, cat_ids, first_id):
    """COCO annotation dicts for ``objects``; ids from ``first_id``."""
    anns = []
    for obj in objects:
        w = obj['xmax'] - obj['xmin']
        h = obj['ymax'] - obj['ymin']
        anns.append(dict(
            id=first_id + len(anns),
            image_id=image_id,
            category_id=cat_ids[obj['name']],
            bbox=[obj['xmin'], obj['ymin'], w, h],
            area=w * h,
            iscrowd=0,
            truncated=obj['truncated'],
            difficult=obj['difficult']))
    return anns


def coco_report(dataset, infos, dropped=None, reason=''):
    """A :class:`~mmfusion.converters._io.ConversionReport` of COCO dicts per split.

    Args:
        dataset (str): Dataset name.
        infos (dict): ``{split: COCO dict}``.
        dropped (dict, optional): ``{split: {class: count}}`` of objects left out.
        reason (str): Why those objects were left out.
    """
    report = ConversionReport(dataset)
    for split, coco in infos.items():
        names = {c['id']: c['name'] for c in coco['categories']}
        report.add_frames(split, len(coco['images']))
        for name in names.values():
            report.add_object(split, name, 0)
        for ann in coco['annotations']:
            report.add_object(split, names[ann['category_id']])
        for name, n in (dropped or {}).get(split, {}).items():
            if n:
                report.drop(split, name, reason, n)
    return report


def write_coco_outputs(out_dir, extra_tag, infos, report):
    """Write ``{extra_tag}_infos_{split}.json`` for every split and the conversion report, in
    one all-or-nothing commit (:func:`~mmfusion.converters._io.write_json_outputs`), then log
    the report's summary.

    Args:
        out_dir (str): Output folder.
        extra_tag (str): Prefix of the json names.
        infos (dict): ``{split: COCO dict}``.
        report (ConversionReport): The report of ``infos`` (:func:`coco_report`).

    Returns:
        dict: ``{split: json path}`` and ``'report'``: the report's path.
    """
    names = {split: f'{extra_tag}_infos_{split}.json' for split in infos}
    outputs = {names[split]: info for split, info in infos.items()}
    outputs[REPORT_NAME] = report.to_dict()
    paths = write_json_outputs(out_dir, outputs)
    report.log_summary()
    out_paths = {split: paths[name] for split, name in names.items()}
    out_paths['report'] = paths[REPORT_NAME]
    return out_paths
