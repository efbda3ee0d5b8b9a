"""Tests for the DroneVehicle converter on a synthetic dataset in the official layout.

No real frames are bundled: the fixture writes 840x712 JPEGs (random interior, 100 px white
border) and VOC-style xml files with polygons, one ``<bndbox>`` object and every class spelling.
"""
import hashlib
import json
import os
import os.path as osp
import shutil

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from mmfusion.converters._io import DatasetFormatError
from mmfusion.converters.dronevehicle import create_dronevehicle_infos

# Objects per (split, id): infrared labels ({X}labelr) and visible labels ({X}label).
# ('poly', [x1, y1, ..., x4, y4]) or ('bnd', [xmin, ymin, xmax, ymax]), raw 840x712 coordinates.
IR_OBJECTS = {
    ('train', '00001'): [
        ('car', 'poly', [200, 150, 260, 150, 260, 180, 200, 180]),
        ('feright car', 'poly', [50, 80, 150, 80, 150, 130, 50, 130]),  # clipped at top-left
        ('truck', 'bnd', [300, 400, 380, 450]),
        ('*', 'poly', [400, 400, 410, 400, 410, 410, 400, 410]),  # placeholder: skipped
    ],
    ('train', '00002'): [
        ('feright_car', 'poly', [700, 580, 800, 580, 800, 650, 700, 650]),  # clipped
        ('bus', 'poly', [300, 200, 340, 240, 320, 260, 280, 220]),  # rotated
        ('van', 'poly', [10, 10, 90, 10, 90, 90, 10, 90]),  # in the border: dropped
        ('truvk', 'poly', [500, 300, 550, 300, 550, 330, 500, 330]),
    ],
    ('val', '00001'): [
        ('feright', 'poly', [150.5, 120.5, 180.5, 120.5, 180.5, 140.5, 150.5, 140.5]),
        ('Freight Car', 'poly', [400, 300, 450, 300, 450, 320, 400, 320]),
        ('van', 'poly', [600, 600, 640, 600, 640, 620, 600, 620]),  # bottom clipped
    ],
    ('val', '00002'): [],
    ('test', '00001'): [('freight_car', 'poly', [120, 120, 160, 120, 160, 140, 120, 140])],
    ('test', '00003'): [('car', 'poly', [130, 130, 170, 130, 170, 150, 130, 150])],
}
VIS_OBJECTS = {key: [('van', 'poly', [110, 110, 130, 110, 130, 120, 110, 120])]
               for key in IR_OBJECTS}


def _xml(objects, polygon_children=True):
    parts = ['<annotation>', '<filename>x.jpg</filename>',
             '<size><width>840</width><height>712</height><depth>3</depth></size>']
    for name, kind, coords in objects:
        parts += ['<object>', f'<name>{name}</name>', '<pose>Unspecified</pose>',
                  '<truncated>0</truncated>', '<difficult>0</difficult>']
        if kind == 'poly':
            parts.append('<polygon>')
            for i in range(4):
                parts.append(f'<x{i + 1}>{coords[2 * i]}</x{i + 1}>'
                             f'<y{i + 1}>{coords[2 * i + 1]}</y{i + 1}>')
            parts.append('</polygon>')
        else:
            keys = ('xmin', 'ymin', 'xmax', 'ymax')
            parts.append('<bndbox>' + ''.join(f'<{k}>{v}</{k}>' for k, v in zip(keys, coords))
                         + '</bndbox>')
        parts.append('</object>')
    parts.append('</annotation>')
    return '\n'.join(parts)


def _frame(seed, mode):
    rng = np.random.default_rng(seed)
    shape = (712, 840, 3) if mode == 'RGB' else (712, 840)
    arr = np.full(shape, 255, np.uint8)
    arr[100:612, 100:740] = rng.integers(0, 256, size=(512, 640) + shape[2:], dtype=np.uint8)
    return Image.fromarray(arr, mode)


def _write_dataset(root):
    for n, (split, stem) in enumerate(sorted(IR_OBJECTS)):
        base = root / split
        for sub in ('img', 'imgr', 'label', 'labelr'):
            (base / f'{split}{sub}').mkdir(parents=True, exist_ok=True)
        _frame(2 * n, 'RGB').save(base / f'{split}img' / f'{stem}.jpg', quality=95)
        _frame(2 * n + 1, 'RGB').save(base / f'{split}imgr' / f'{stem}.jpg', quality=95)
        (base / f'{split}labelr' / f'{stem}.xml').write_text(_xml(IR_OBJECTS[split, stem]))
        (base / f'{split}label' / f'{stem}.xml').write_text(_xml(VIS_OBJECTS[split, stem]))


@pytest.fixture(scope='module')
def _pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp('dv_src') / 'DroneVehicle'
    _write_dataset(root)
    return root


@pytest.fixture
def dv_root(_pristine, tmp_path):
    """A fresh writable copy of the synthetic dataset."""
    root = tmp_path / 'DroneVehicle'
    shutil.copytree(_pristine, root)
    return root


@pytest.fixture(scope='module')
def converted(_pristine, tmp_path_factory):
    out = tmp_path_factory.mktemp('dv_out')
    before = _tree_hash(_pristine)
    paths = create_dronevehicle_infos(str(_pristine), str(out))
    with open(paths.pop('report')) as f:
        report = json.load(f)
    infos = {}
    for split, path in paths.items():
        with open(path) as f:
            infos[split] = json.load(f)
    return dict(root=_pristine, out=out, paths=paths, infos=infos, before=before, report=report)


def _tree_hash(folder):
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            path = osp.join(dirpath, name)
            digest.update(osp.relpath(path, folder).encode())
            with open(path, 'rb') as f:
                digest.update(f.read())
    return digest.hexdigest()


def _all_files(folder):
    if not osp.isdir(folder):
        return []
    return sorted(
        osp.relpath(osp.join(d, f), folder) for d, _, files in os.walk(folder) for f in files)


def _anns(info, image_id):
    return [a for a in info['annotations'] if a['image_id'] == image_id]


def test_outputs_and_input_unchanged(converted):
    out, paths, infos = converted['out'], converted['paths'], converted['infos']
    assert _tree_hash(converted['root']) == converted['before']
    assert list(paths) == ['train', 'val', 'test']
    for split in paths:
        assert paths[split] == osp.join(str(out), f'dronevehicle_infos_{split}.json')
    expected = sorted(
        [f'dronevehicle_infos_{s}.json' for s in ('train', 'val', 'test')]
        + ['conversion_report.json']
        + [f'{s}/{m}/{stem}.jpg' for s, stem in IR_OBJECTS for m in ('rgb', 'ir')])
    assert _all_files(out) == expected  # no temp leftovers
    assert [img['id'] for img in infos['test']['images']] == [1, 3]
    for split, info in infos.items():
        assert info['categories'] == [
            {'id': 1, 'name': 'car'}, {'id': 2, 'name': 'truck'}, {'id': 3, 'name': 'bus'},
            {'id': 4, 'name': 'van'}, {'id': 5, 'name': 'freight_car'}]
        assert info['info']['label_modality'] == 'infrared'
        ids = [a['id'] for a in info['annotations']]
        assert ids == list(range(1, len(ids) + 1))
        for img in info['images']:
            assert (img['width'], img['height']) == (640, 512)
            assert img['file_name'] == f"{split}/rgb/{img['dronevehicle_id']}.jpg"
            assert img['infrared_file_name'] == f"{split}/ir/{img['dronevehicle_id']}.jpg"
        for ann in info['annotations']:
            x, y, w, h = ann['bbox']
            assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= 640 and y + h <= 512
            assert ann['area'] == w * h and ann['iscrowd'] == 0
            assert len(ann['polygon']) == 8 and len(ann['rbox']) == 5
    coco = COCO(paths['train'])
    assert len(coco.getAnnIds()) == 6
    assert coco.loadCats(5)[0]['name'] == 'freight_car'


def test_crop_pixels(converted):
    root, out = converted['root'], converted['out']
    for split, stem in IR_OBJECTS:
        for src_dir, dst in ((f'{split}img', 'rgb'), (f'{split}imgr', 'ir')):
            with Image.open(root / split / src_dir / f'{stem}.jpg') as im:
                src = np.asarray(im.convert('RGB'), np.float32)
            with Image.open(out / split / dst / f'{stem}.jpg') as im:
                assert im.size == (640, 512) and im.format == 'JPEG'
                got = np.asarray(im.convert('RGB'), np.float32)
            interior = src[100:612, 100:740]
            assert np.abs(got - interior).mean() < 4  # JPEG re-encoding error only
            shifted = src[101:613, 100:740]
            assert np.abs(got - shifted).mean() > 40  # an off-by-one crop would fail


def test_boxes_shifted_clipped_and_classes(converted):
    train, val, test = (converted['infos'][s] for s in ('train', 'val', 'test'))
    a = _anns(train, 1)
    assert [x['category_id'] for x in a] == [1, 5, 2]  # '*' skipped
    assert a[0]['bbox'] == [100, 50, 60, 30]
    assert a[0]['polygon'] == [100, 50, 160, 50, 160, 80, 100, 80]
    assert a[0]['rbox'] == pytest.approx([130, 65, 60, 30, 0], abs=1e-3) or \
        a[0]['rbox'] == pytest.approx([130, 65, 30, 60, 90], abs=1e-3)
    assert a[1]['bbox'] == [0, 0, 50, 30]  # (-50, -20)-(50, 30) clipped
    assert a[1]['polygon'] == [-50, -20, 50, -20, 50, 30, -50, 30]  # unclipped
    assert a[2]['bbox'] == [200, 300, 80, 50]  # from <bndbox>
    assert a[2]['polygon'] == [200, 300, 280, 300, 280, 350, 200, 350]

    b = _anns(train, 2)
    assert [x['category_id'] for x in b] == [5, 3, 2]  # van in the border dropped, truvk
    assert b[0]['bbox'] == [600, 480, 40, 32]  # (600, 480)-(700, 550) clipped to 640x512
    assert b[1]['bbox'] == [180, 100, 60, 60]
    cx, cy, w, h, angle = b[1]['rbox']
    assert (cx, cy) == pytest.approx((210, 130), abs=1e-3)
    assert sorted([w, h]) == pytest.approx(sorted([40 * 2**0.5, 20 * 2**0.5]), abs=1e-3)
    assert angle == pytest.approx(45, abs=1e-3)
    assert train['info']['num_dropped'] == 1

    c = _anns(val, 1)
    assert [x['category_id'] for x in c] == [5, 5, 4]
    assert c[0]['bbox'] == [50.5, 20.5, 30, 20]
    assert c[2]['bbox'] == [500, 500, 40, 12]  # (500, 500)-(540, 520) clipped to y <= 512
    assert _anns(val, 2) == []
    assert [x['category_id'] for x in test['annotations']] == [5, 1]


def test_visible_labels(_pristine, tmp_path):
    paths = create_dronevehicle_infos(str(_pristine), str(tmp_path / 'o'), extra_tag='v',
                                      label_modality='visible', splits='val')
    assert list(paths) == ['val', 'report']
    assert osp.basename(paths['val']) == 'v_infos_val.json'
    with open(paths['val']) as f:
        info = json.load(f)
    assert info['info']['label_modality'] == 'visible'
    assert [(a['image_id'], a['category_id'], a['bbox']) for a in info['annotations']] == [
        (1, 4, [10, 10, 20, 10]), (2, 4, [10, 10, 20, 10])]
    with pytest.raises(ValueError, match='label_modality'):
        create_dronevehicle_infos(str(_pristine), str(tmp_path / 'p'), label_modality='rgb')


def _expect_error(root, tmp_path, offending, words=(), **kwargs):
    out_dir = tmp_path / 'out'
    before = _tree_hash(root)
    with pytest.raises(DatasetFormatError) as excinfo:
        create_dronevehicle_infos(str(root), str(out_dir), **kwargs)
    assert excinfo.value.path == str(offending)
    for w in words:
        assert w in str(excinfo.value)
    assert _all_files(out_dir) == []
    assert _tree_hash(root) == before


@pytest.mark.parametrize('missing,partner', [('valimgr', 'valimg'), ('valimg', 'valimgr')])
def test_missing_partner(dv_root, tmp_path, missing, partner):
    os.remove(dv_root / 'val' / missing / '00002.jpg')
    _expect_error(dv_root, tmp_path, dv_root / 'val' / partner / '00002.jpg',
                  [str(dv_root / 'val' / missing / '00002.jpg')])


@pytest.mark.parametrize('folder', ['testimg', 'testimgr'])
def test_wrong_size(dv_root, tmp_path, folder):
    img = dv_root / 'test' / folder / '00003.jpg'
    Image.new('RGB', (640, 512)).save(img)
    _expect_error(dv_root, tmp_path, img, ['640x512', '840x712'])


def test_malformed_and_missing_xml(dv_root, tmp_path):
    xml = dv_root / 'train' / 'trainlabelr' / '00002.xml'
    xml.write_text(xml.read_text()[:200])
    _expect_error(dv_root, tmp_path, xml, ['malformed'])
    os.remove(xml)
    _expect_error(dv_root, tmp_path, xml, ['annotation is missing'])
    # the visible labels are not read by default, so breaking them changes nothing
    (dv_root / 'train' / 'trainlabel' / '00001.xml').write_text('<annotation>')
    _expect_error(dv_root, tmp_path, xml)


@pytest.mark.parametrize('old,new,words', [
    ('<x4>200</x4>', '', ['object 0 <polygon> has 7 numbers']),
    ('<x4>200</x4>', '<x4>200</x4><x5>1</x5>', ['object 0 <polygon> has 9 numbers']),
    ('<y2>150</y2>', '<y2>1 5</y2>', ['object 0 <polygon> <y2> is not a number']),
    ('<name>truck</name>', '<name>tractor</name>', ["object 2 has unknown class 'tractor'"]),
    ('<xmax>380</xmax>', '', ['object 2 <bndbox> has no <xmax>']),
    ('<name>feright car</name>', '', ['object 1 has no <name>']),
])
def test_bad_objects(dv_root, tmp_path, old, new, words):
    xml = dv_root / 'train' / 'trainlabelr' / '00001.xml'
    text = xml.read_text()
    assert old in text
    xml.write_text(text.replace(old, new, 1))
    _expect_error(dv_root, tmp_path, xml, words)


def test_no_geometry(dv_root, tmp_path):
    xml = dv_root / 'test' / 'testlabelr' / '00001.xml'
    text = xml.read_text()
    start, end = text.index('<polygon>'), text.index('</polygon>') + len('</polygon>')
    xml.write_text(text[:start] + text[end:])
    _expect_error(dv_root, tmp_path, xml, ['object 0 has neither <polygon> nor <bndbox>'])


def test_undecodable_image_leaves_nothing(dv_root, tmp_path):
    # the header is intact (passes validation) but the pixel data is cut: fails while writing,
    # after other images were already staged
    img = dv_root / 'test' / 'testimgr' / '00003.jpg'
    data = img.read_bytes()
    img.write_bytes(data[:len(data) // 3])
    _expect_error(dv_root, tmp_path, img, ['cannot decode'])
    assert not (tmp_path / 'out').exists()


def test_missing_split_and_out_dir_inside(dv_root, tmp_path):
    _expect_error(dv_root, tmp_path, dv_root / 'x' / 'ximg', splits=('x', ))
    before = _all_files(dv_root)
    for out in (dv_root / 'infos', dv_root):
        with pytest.raises(ValueError, match='inside the dataset'):
            create_dronevehicle_infos(str(dv_root), str(out))
    assert _all_files(dv_root) == before


def test_conversion_report(converted):
    report, infos = converted['report'], converted['infos']
    for split, info in infos.items():
        entry = report['splits'][split]
        assert entry['frames'] == len(info['images'])
        assert sum(entry['objects'].values()) == len(info['annotations'])
    dropped = [d for d in report['dropped'] if d['split'] == 'train']
    assert sum(d['count'] for d in dropped) == infos['train']['info']['num_dropped'] == 1
    assert 'border' in dropped[0]['reason']
