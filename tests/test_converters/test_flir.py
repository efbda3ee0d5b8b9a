"""Tests for the aligned FLIR converter, on a synthetic fixture in the official ``align/`` layout.

No real FLIR frames are bundled (dataset terms): the fixture writes tiny JPEGs with PIL (thermal
smaller than RGB, as in the release) and VOC xml with both root-tag spellings and a ``dog`` box.
"""
import json
import os
import os.path as osp

import pytest
from PIL import Image
from pycocotools.coco import COCO

from mmfusion.converters._io import DatasetFormatError
from mmfusion.converters.flir import create_flir_infos

from .test_llvip import _all_files, _tree_hash

IR_SIZE, RGB_SIZE = (40, 32), (60, 45)

# id -> (root tag, objects); boxes are VOC corners on the thermal frame
FRAMES = {
    'FLIR_00002': ('annotation', [('car', (0, 0, 10, 8)), ('person', (20, 5, 25, 20))]),
    'FLIR_00003': ('Annotation', [('dog', (1, 1, 4, 4)), ('bicycle', (3, 4, 40, 32))]),
    'FLIR_00010': ('annotation', []),
    'FLIR_08865': ('Annotation', [('person', (2, 3, 7, 19)), ('dog', (5, 5, 9, 9)),
                                  ('car', (10, 10, 30, 20))]),
    'FLIR_09999': ('annotation', [('person', (1, 1, 2, 2))]),  # listed in no split file
}
TRAIN_TXT = 'FLIR_00002\nFLIR_00003_PreviewData\n\n  FLIR_00010  \n'
VAL_TXT = 'FLIR_08865_PreviewData\n'


def _xml(root_tag, objects, size=IR_SIZE):
    objs = ''.join(
        f'<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>'
        f'<difficult>0</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax>'
        f'<ymax>{y1}</ymax></bndbox></object>\n'
        for name, (x0, y0, x1, y1) in objects)
    return (f'<{root_tag}><folder>FLIR</folder><size><width>{size[0]}</width>'
            f'<height>{size[1]}</height><depth>1</depth></size>\n{objs}</{root_tag}>\n')


@pytest.fixture
def flir_root(tmp_path):
    root = tmp_path / 'FLIR'
    img_dir, ann_dir = root / 'align' / 'JPEGImages', root / 'align' / 'Annotations'
    os.makedirs(img_dir)
    os.makedirs(ann_dir)
    for flir_id, (tag, objects) in FRAMES.items():
        Image.new('L', IR_SIZE, 80).save(img_dir / f'{flir_id}_PreviewData.jpeg')
        Image.new('RGB', RGB_SIZE, (1, 2, 3)).save(img_dir / f'{flir_id}_RGB.jpg')
        (ann_dir / f'{flir_id}_PreviewData.xml').write_text(_xml(tag, objects))
    (root / 'align' / 'align_train.txt').write_text(TRAIN_TXT)
    (root / 'align' / 'align_validation.txt').write_text(VAL_TXT)
    return root


def _load(paths):
    out = {}
    for split, path in paths.items():
        with open(path) as f:
            out[split] = json.load(f)
    return out


def test_convert(flir_root, tmp_path):
    before = _tree_hash(flir_root)
    out_dir = tmp_path / 'out'
    paths = create_flir_infos(str(flir_root), str(out_dir))
    assert _tree_hash(flir_root) == before
    report_path = paths.pop('report')
    assert paths == {s: osp.join(str(out_dir), f'flir_infos_{s}.json') for s in ('train', 'val')}
    assert _all_files(out_dir) == [
        'conversion_report.json', 'flir_infos_train.json', 'flir_infos_val.json']
    with open(report_path) as f:
        report = json.load(f)
    infos = _load(paths)
    train, val = infos['train'], infos['val']
    assert [img['id'] for img in train['images']] == [2, 3, 10]
    assert [img['id'] for img in val['images']] == [8865]
    for info in infos.values():
        assert info['categories'] == [
            {'id': 1, 'name': 'person'}, {'id': 2, 'name': 'bicycle'}, {'id': 3, 'name': 'car'}]
        ids = [a['id'] for a in info['annotations']]
        assert ids == list(range(1, len(ids) + 1))
        for img in info['images']:
            fid = img['flir_id']
            assert img['file_name'] == f'align/JPEGImages/{fid}_RGB.jpg'
            assert img['infrared_file_name'] == f'align/JPEGImages/{fid}_PreviewData.jpeg'
            assert (img['width'], img['height']) == IR_SIZE
            assert (img['rgb_width'], img['rgb_height']) == RGB_SIZE
            assert osp.isfile(osp.join(flir_root, img['file_name']))
    assert [img['flir_id'] for img in train['images']] == ['FLIR_00002', 'FLIR_00003',
                                                           'FLIR_00010']
    assert [(a['image_id'], a['category_id'], a['bbox'], a['area'])
            for a in train['annotations']] == [
                (2, 3, [0, 0, 10, 8], 80), (2, 1, [20, 5, 5, 15], 75),
                (3, 2, [3, 4, 37, 28], 37 * 28)]  # dog dropped
    assert [(a['image_id'], a['category_id'], a['bbox']) for a in val['annotations']] == [
        (8865, 1, [2, 3, 5, 16]), (8865, 3, [10, 10, 20, 10])]
    assert all(a['iscrowd'] == 0 for i in infos.values() for a in i['annotations'])
    assert report['splits'] == {
        'train': {'frames': 3, 'objects': {'bicycle': 1, 'car': 1, 'person': 1}},
        'val': {'frames': 1, 'objects': {'bicycle': 0, 'car': 1, 'person': 1}}}
    assert [(d['split'], d['class'], d['count']) for d in report['dropped']] == [
        ('train', 'dog', 1), ('val', 'dog', 1)]
    coco = COCO(paths['train'])
    assert sorted(coco.getImgIds()) == [2, 3, 10]
    assert len(coco.getAnnIds(imgIds=[2])) == 2


def test_deterministic(flir_root, tmp_path):
    a = create_flir_infos(str(flir_root), str(tmp_path / 'a'), extra_tag='x')
    b = create_flir_infos(str(flir_root), str(tmp_path / 'b'), extra_tag='x')
    assert osp.basename(a['val']) == 'x_infos_val.json'
    for split in a:
        with open(a[split], 'rb') as fa, open(b[split], 'rb') as fb:
            assert fa.read() == fb.read()


def _expect_error(root, tmp_path, offending, words=None):
    out_dir = tmp_path / 'out'
    before = _tree_hash(root)
    with pytest.raises(DatasetFormatError) as excinfo:
        create_flir_infos(str(root), str(out_dir))
    assert excinfo.value.path == str(offending)
    if words:
        assert words in str(excinfo.value)
    assert _all_files(out_dir) == []  # nothing written, no temporary files either
    assert _tree_hash(root) == before


def test_missing_rgb_partner(flir_root, tmp_path):
    rgb = flir_root / 'align' / 'JPEGImages' / 'FLIR_08865_RGB.jpg'  # val: train is fine
    os.remove(rgb)
    _expect_error(flir_root, tmp_path, rgb, 'RGB partner')


def test_missing_thermal(flir_root, tmp_path):
    ir = flir_root / 'align' / 'JPEGImages' / 'FLIR_00003_PreviewData.jpeg'
    os.remove(ir)
    _expect_error(flir_root, tmp_path, ir, 'thermal frame')


def test_missing_xml(flir_root, tmp_path):
    xml = flir_root / 'align' / 'Annotations' / 'FLIR_00010_PreviewData.xml'
    os.remove(xml)
    _expect_error(flir_root, tmp_path, xml, 'annotation is missing')


@pytest.mark.parametrize('text,words', [
    ('<annotation><size>', 'malformed'),
    (_xml('Annotation', [('car', (0, 0, 5, 5)), ('truck', (0, 0, 5, 5))]),
     "object 1 has class 'truck'"),
    (_xml('annotation', [('Person', (0, 0, 5, 5))]), "object 0 has class 'Person'"),
    (_xml('annotation', [('car', (0, 0, 41, 5))]), 'outside'),
    (_xml('annotation', [('dog', (0, 0, 5, 5)), ('car', (0, 5, 5, 5))]), 'object 1'),
    (_xml('annotations', []), 'root tag'),
])
def test_bad_xml(flir_root, tmp_path, text, words):
    xml = flir_root / 'align' / 'Annotations' / 'FLIR_08865_PreviewData.xml'
    xml.write_text(text)
    _expect_error(flir_root, tmp_path, xml, words)


def test_thermal_size_mismatch(flir_root, tmp_path):
    ir = flir_root / 'align' / 'JPEGImages' / 'FLIR_00002_PreviewData.jpeg'
    Image.new('L', (640, 512)).save(ir)
    _expect_error(flir_root, tmp_path, ir, '640x512')


def test_unreadable_rgb(flir_root, tmp_path):
    rgb = flir_root / 'align' / 'JPEGImages' / 'FLIR_00002_RGB.jpg'
    rgb.write_bytes(b'not a jpeg')
    _expect_error(flir_root, tmp_path, rgb, 'cannot read image')


@pytest.mark.parametrize('name,text,words', [
    ('align_train.txt', 'FLIR_00002\nFLIR_00003.jpg\n', "line 2: 'FLIR_00003.jpg'"),
    ('align_train.txt', 'FLIR_00002\nFLIR_00002_PreviewData\n', 'listed twice'),
    ('align_validation.txt', 'FLIR_00003\n', 'listed twice'),
    ('align_validation.txt', '\n', "split 'val' lists no frames"),
    ('align_train.txt', b'FLIR_00002\nFLIR_\xe900003\n', 'line 2: not UTF-8'),
])
def test_bad_split_file(flir_root, tmp_path, name, text, words):
    path = flir_root / 'align' / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    _expect_error(flir_root, tmp_path, path, words)


def test_missing_split_file(flir_root, tmp_path):
    path = flir_root / 'align' / 'align_validation.txt'
    os.remove(path)
    _expect_error(flir_root, tmp_path, path, 'split file is missing')


def test_out_dir_inside_root(flir_root, tmp_path):
    files = _all_files(flir_root)
    for out_dir in (flir_root / 'align' / 'infos', flir_root):
        with pytest.raises(ValueError, match='inside the dataset'):
            create_flir_infos(str(flir_root), str(out_dir))
    assert not (flir_root / 'align' / 'infos').exists()
    assert _all_files(flir_root) == files
