"""Tests for the M3FD converter.

Fixtures are built in ``tmp_path`` in the official layouts (flat ``{Annotation,Ir,Vis}/`` and
per-scene ``<Scenario>/<Scene>/{Annotation,Ir,Vis}/``) from tiny synthetic PNGs and VOC xml, plus
one fixture placing the real pair in tests/data/m3fd (see its README.md) with a *synthetic*
annotation xml (the sample ships no labels).
"""
import hashlib
import json
import math
import os
import os.path as osp
import shutil

import pytest
from PIL import Image
from pycocotools.coco import COCO

from mmfusion.converters._io import DatasetFormatError
from mmfusion.converters.m3fd import CLASSES, create_m3fd_infos

from .test_llvip import _all_files, _tree_hash

W, H = 32, 24


def _xml(width, height, objects, root_tag='annotation'):
    objs = ''.join(
        f'\t<object>\n\t\t<name>{name}</name>\n\t\t<pose>Unspecified</pose>\n'
        f'\t\t<truncated>0</truncated>\n\t\t<difficult>0</difficult>\n\t\t<bndbox>\n'
        f'\t\t\t<xmin>{x0}</xmin>\n\t\t\t<ymin>{y0}</ymin>\n\t\t\t<xmax>{x1}</xmax>\n'
        f'\t\t\t<ymax>{y1}</ymax>\n\t\t</bndbox>\n\t</object>\n'
        for name, (x0, y0, x1, y1) in objects)
    return (f'<{root_tag}>\n\t<folder>M3FD</folder>\n\t<size>\n\t\t<width>{width}</width>\n'
            f'\t\t<height>{height}</height>\n\t\t<depth>3</depth>\n\t</size>\n{objs}'
            f'</{root_tag}>\n')


def _objects(k):
    """Deterministic objects of frame ``k``: ``k % 3`` boxes, classes cycling."""
    return [(CLASSES[(k + j) % len(CLASSES)], (j, j + 1, j + 5 + k % 7, j + 4 + k % 5))
            for j in range(k % 3)]


def _add_frame(folder, stem, objects, size=(W, H)):
    for sub in ('Annotation', 'Ir', 'Vis'):
        os.makedirs(osp.join(folder, sub), exist_ok=True)
    Image.new('RGB', size, (10, 20, 30)).save(osp.join(folder, 'Vis', stem + '.png'))
    Image.new('RGB', size, (90, 90, 90)).save(osp.join(folder, 'Ir', stem + '.png'))
    with open(osp.join(folder, 'Annotation', stem + '.xml'), 'w') as f:
        f.write(_xml(size[0], size[1], objects))


@pytest.fixture
def flat_root(tmp_path):
    root = tmp_path / 'M3FD'
    for k in range(10):
        _add_frame(str(root), f'{k:05d}', _objects(k))
    (root / 'Vis' / '.hidden.png').write_bytes(b'')  # ignored
    return root


SCENES = {'Daytime/Street': ['00001', '00002', '00003'], 'Night/Road': ['00001', '00005']}


@pytest.fixture
def scene_root(tmp_path):
    root = tmp_path / 'M3FD'
    for scene, stems in SCENES.items():
        for k, stem in enumerate(stems):
            _add_frame(str(root / scene), stem, _objects(k + 1))
    (root / 'Daytime' / 'notes.txt').write_text('ignored')
    return root


def _load(paths):
    out = {}
    for split, path in paths.items():
        if split != 'report':
            with open(path) as f:
                out[split] = json.load(f)
    return out


def _expected_val(scene, stems, val_ratio, seed):
    """The documented split rule, written out independently."""
    keyed = sorted(
        (hashlib.sha256(f'{seed}:{scene}/{s}'.encode()).hexdigest(), s) for s in stems)
    return {s for _, s in keyed[:math.floor(val_ratio * len(stems) + 0.5)]}


def test_flat_layout(flat_root, tmp_path):
    before = _tree_hash(flat_root)
    out_dir = tmp_path / 'out'
    paths = create_m3fd_infos(str(flat_root), str(out_dir))
    assert _tree_hash(flat_root) == before
    with open(paths.pop('report')) as f:
        report = json.load(f)
    assert paths == {s: osp.join(str(out_dir), f'm3fd_infos_{s}.json') for s in ('train', 'val')}
    assert _all_files(out_dir) == [
        'conversion_report.json', 'm3fd_infos_train.json', 'm3fd_infos_val.json']
    assert report['splits']['train']['frames'] == 8 and report['splits']['val']['frames'] == 2
    infos = _load(paths)
    stems = [f'{k:05d}' for k in range(10)]
    val = {img['m3fd_id'] for img in infos['val']['images']}
    train = {img['m3fd_id'] for img in infos['train']['images']}
    assert len(val) == 2 and len(train) == 8 and val | train == set(stems)
    assert val == _expected_val('', stems, 0.2, 0)
    all_imgs = infos['train']['images'] + infos['val']['images']
    # ids run from 1 in (scene, stem) order over both splits
    assert sorted((img['id'], img['m3fd_id']) for img in all_imgs) == list(
        zip(range(1, 11), stems))
    for info in infos.values():
        assert info['categories'] == [{'id': i + 1, 'name': n} for i, n in enumerate(CLASSES)]
        ids = [a['id'] for a in info['annotations']]
        assert ids == list(range(1, len(ids) + 1))
        for img in info['images']:
            assert img['file_name'] == f'Vis/{img["m3fd_id"]}.png'
            assert img['infrared_file_name'] == f'Ir/{img["m3fd_id"]}.png'
            assert (img['width'], img['height'], img['scene']) == (W, H, '')
    n_boxes = sum(len(_objects(k)) for k in range(10))
    assert len(infos['train']['annotations']) + len(infos['val']['annotations']) == n_boxes
    anns = [a for info in infos.values() for a in info['annotations'] if a['image_id'] == 6]
    # frame 00005 (image id 6): objects (Truck, (0, 1, 10, 4)) and (People, (1, 2, 11, 5))
    assert [(a['category_id'], a['bbox'], a['area']) for a in anns] == [
        (6, [0, 1, 10, 3], 30), (1, [1, 2, 10, 3], 30)]
    for path in paths.values():
        coco = COCO(path)
        assert len(coco.getImgIds()) in (2, 8)


def test_split_deterministic_and_seeded(flat_root, tmp_path):
    a = create_m3fd_infos(str(flat_root), str(tmp_path / 'a'))
    b = create_m3fd_infos(str(flat_root), str(tmp_path / 'b'))
    for split in ('train', 'val'):
        with open(a[split], 'rb') as fa, open(b[split], 'rb') as fb:
            assert fa.read() == fb.read()
    stems = [f'{k:05d}' for k in range(10)]
    vals = set()
    for seed in (0, 1, 2, 3):
        paths = create_m3fd_infos(str(flat_root), str(tmp_path / f's{seed}'), extra_tag='t',
                                  val_ratio=0.3, seed=seed)
        assert osp.basename(paths['val']) == 't_infos_val.json'
        val = frozenset(img['m3fd_id'] for img in _load(paths)['val']['images'])
        assert val == _expected_val('', stems, 0.3, seed) and len(val) == 3
        vals.add(val)
    assert len(vals) > 1  # the seed matters


def test_val_ratio_bounds(flat_root, tmp_path):
    infos = _load(create_m3fd_infos(str(flat_root), str(tmp_path / 'o'), val_ratio=0))
    assert infos['val']['images'] == [] and infos['val']['annotations'] == []
    assert len(infos['train']['images']) == 10
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match='val_ratio'):
            create_m3fd_infos(str(flat_root), str(tmp_path / 'x'), val_ratio=bad)
    assert not (tmp_path / 'x').exists()
    # 10 frames: 0.01 gives no val frame and 0.99 no train frame; both refused
    for ratio, split in ((0.01, 'val'), (0.99, 'train')):
        with pytest.raises(DatasetFormatError, match=f'split {split!r} is empty'):
            create_m3fd_infos(str(flat_root), str(tmp_path / 'x'), val_ratio=ratio)
    assert not (tmp_path / 'x').exists()


def test_scene_layout(scene_root, tmp_path):
    before = _tree_hash(scene_root)
    infos = _load(create_m3fd_infos(str(scene_root), str(tmp_path / 'out'), val_ratio=0.5))
    assert _tree_hash(scene_root) == before
    imgs = infos['train']['images'] + infos['val']['images']
    order = [(s, stem) for s in sorted(SCENES) for stem in SCENES[s]]
    assert sorted((img['id'], img['scene'], img['m3fd_id']) for img in imgs) == [
        (i + 1, s, stem) for i, (s, stem) in enumerate(order)]
    for img in imgs:
        assert img['file_name'] == f'{img["scene"]}/Vis/{img["m3fd_id"]}.png'
        assert img['infrared_file_name'] == f'{img["scene"]}/Ir/{img["m3fd_id"]}.png'
        assert osp.isfile(osp.join(scene_root, img['file_name']))
    for scene, stems in SCENES.items():  # stratified: 3 -> 2 val, 2 -> 1 val
        val = {img['m3fd_id'] for img in infos['val']['images'] if img['scene'] == scene}
        assert val == _expected_val(scene, stems, 0.5, 0)
        assert len(val) == {3: 2, 2: 1}[len(stems)]
    n_boxes = sum(len(_objects(k + 1)) for stems in SCENES.values() for k in range(len(stems)))
    assert sum(len(i['annotations']) for i in infos.values()) == n_boxes
    for info in infos.values():
        img_ids = {img['id'] for img in info['images']}
        assert all(a['image_id'] in img_ids for a in info['annotations'])


def test_real_pair_with_synthetic_xml(test_data_root, tmp_path):
    """The real M3FD pair 00471 (1024x768) with a made-up annotation, flat layout."""
    sample = osp.join(test_data_root, 'm3fd', 'M3FD_sample')
    root = tmp_path / 'M3FD'
    for sub in ('Vis', 'Ir'):
        os.makedirs(root / sub)
        shutil.copyfile(osp.join(sample, sub, '00471.png'), root / sub / '00471.png')
    os.makedirs(root / 'Annotation')
    (root / 'Annotation' / '00471.xml').write_text(
        _xml(1024, 768, [('People', (100, 200, 140, 300)), ('Car', (500, 400, 1024, 768))]))
    infos = _load(create_m3fd_infos(str(root), str(tmp_path / 'out'), val_ratio=0))
    assert infos['val']['images'] == []  # one real frame: no val split
    (img, ) = infos['train']['images']
    assert (img['width'], img['height']) == (1024, 768)
    assert img['file_name'] == 'Vis/00471.png' and img['infrared_file_name'] == 'Ir/00471.png'
    assert [(a['category_id'], a['bbox']) for a in infos['train']['annotations']] == [
        (1, [100, 200, 40, 100]), (2, [500, 400, 524, 368])]
    # a wrong <size> is caught against the real image header
    (root / 'Annotation' / '00471.xml').write_text(_xml(1280, 1024, []))
    with pytest.raises(DatasetFormatError, match='1024x768'):
        create_m3fd_infos(str(root), str(tmp_path / 'out2'), val_ratio=0)


def _expect_error(root, tmp_path, offending, words=None, error=DatasetFormatError, **kwargs):
    out_dir = tmp_path / 'out'
    before = _tree_hash(root)
    with pytest.raises(error) as excinfo:
        create_m3fd_infos(str(root), str(out_dir), **kwargs)
    if error is DatasetFormatError:
        assert excinfo.value.path == str(offending)
    if words:
        assert words in str(excinfo.value)
    assert _all_files(out_dir) == []
    assert _tree_hash(root) == before


def test_missing_partner(flat_root, tmp_path):
    os.remove(flat_root / 'Ir' / '00003.png')
    _expect_error(flat_root, tmp_path, flat_root / 'Vis' / '00003.png',
                  str(flat_root / 'Ir' / '00003.png'))


def test_missing_partner_in_scene(scene_root, tmp_path):
    os.remove(scene_root / 'Night/Road' / 'Vis' / '00005.png')
    _expect_error(scene_root, tmp_path, scene_root / 'Night/Road' / 'Ir' / '00005.png',
                  'no Vis partner')


def test_missing_xml(flat_root, tmp_path):
    os.remove(flat_root / 'Annotation' / '00007.xml')
    _expect_error(flat_root, tmp_path, flat_root / 'Annotation' / '00007.xml',
                  'annotation is missing')


@pytest.mark.parametrize('text,words', [
    ('<annotation><size><width>32</width>', 'malformed'),
    (_xml(W, H, [('Bicycle', (1, 1, 5, 5))]), "object 0 has class 'Bicycle'"),
    (_xml(W, H, [('Car', (1, 1, 5, 5)), ('people', (1, 1, 5, 5))]), "object 1 has class"),
    (_xml(W, H, [('Car', (1, 1, 33, 5))]), 'outside'),
    (_xml(W, H, [('Car', (5, 1, 5, 5))]), 'non-positive'),
    (_xml(W, H, []).replace('<height>24</height>', ''), 'no <height>'),
    (_xml(W, H, [], root_tag='foo'), 'root tag'),
])
def test_bad_xml(flat_root, tmp_path, text, words):
    xml = flat_root / 'Annotation' / '00004.xml'
    xml.write_text(text)
    _expect_error(flat_root, tmp_path, xml, words)


def test_size_mismatch(scene_root, tmp_path):
    img = scene_root / 'Daytime/Street' / 'Ir' / '00002.png'
    Image.new('RGB', (W + 1, H)).save(img)
    _expect_error(scene_root, tmp_path, img, f'{W + 1}x{H}')


def test_missing_annotation_folder_and_layout(scene_root, tmp_path):
    shutil.rmtree(scene_root / 'Night/Road' / 'Annotation')
    _expect_error(scene_root, tmp_path, scene_root / 'Night/Road' / 'Annotation')
    empty = tmp_path / 'empty'
    empty.mkdir()
    _expect_error(empty, tmp_path, empty, 'no M3FD layout')


def test_out_dir_inside_root(flat_root, tmp_path):
    files = _all_files(flat_root)
    for out_dir in (flat_root / 'infos', flat_root):
        with pytest.raises(ValueError, match='inside the dataset'):
            create_m3fd_infos(str(flat_root), str(out_dir))
    assert not (flat_root / 'infos').exists()
    assert _all_files(flat_root) == files
