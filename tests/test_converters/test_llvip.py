"""Tests for the LLVIP converter, on the real sample in tests/data/llvip (see its README.md)."""
import hashlib
import json
import os
import os.path as osp
import shutil

import pytest
from pycocotools.coco import COCO

from mmfusion.converters._io import DatasetFormatError
from mmfusion.converters.llvip import create_llvip_infos


def _tree_hash(folder):
    """Hash of every file's relative path, content and mode under ``folder``."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames) + [d + '/' for d in dirnames]:
            path = osp.join(dirpath, name)
            digest.update(osp.relpath(path, folder).encode())
            if name.endswith('/'):
                continue
            digest.update(str(os.stat(path).st_mode).encode())
            with open(path, 'rb') as f:
                digest.update(f.read())
    return digest.hexdigest()


def _all_files(folder):
    if not osp.isdir(folder):
        return []
    return sorted(
        osp.relpath(osp.join(d, f), folder) for d, _, files in os.walk(folder) for f in files)


@pytest.fixture
def llvip_root(test_data_root):
    return osp.join(test_data_root, 'llvip', 'LLVIP')


@pytest.fixture
def llvip_copy(llvip_root, tmp_path):
    """A writable copy of the sample, to break."""
    root = tmp_path / 'LLVIP'
    shutil.copytree(llvip_root, root)
    for dirpath, _, files in os.walk(root):
        for f in files:
            os.chmod(osp.join(dirpath, f), 0o644)
    return root


def test_real_sample(llvip_root, tmp_path):
    before = _tree_hash(llvip_root)
    out_dir = tmp_path / 'out'
    paths = create_llvip_infos(llvip_root, str(out_dir))

    assert _tree_hash(llvip_root) == before
    assert set(paths) == {'train', 'test', 'report'}
    assert paths['train'] == osp.join(str(out_dir), 'llvip_infos_train.json')
    assert paths['test'] == osp.join(str(out_dir), 'llvip_infos_test.json')
    assert _all_files(out_dir) == [
        'conversion_report.json', 'llvip_infos_test.json', 'llvip_infos_train.json']
    with open(paths.pop('report')) as f:
        report = json.load(f)
    assert report['splits'] == {'train': {'frames': 1, 'objects': {'person': 3}},
                                'test': {'frames': 5, 'objects': {'person': 10}}}
    assert report['dropped'] == []

    infos = {}
    for split, path in paths.items():
        with open(path) as f:
            infos[split] = json.load(f)
    train, test = infos['train'], infos['test']
    assert [img['id'] for img in train['images']] == [10005]
    assert [img['id'] for img in test['images']] == [190001, 190002, 190003, 190004, 190005]
    assert len(train['annotations']) == 3
    assert len(test['annotations']) == 10
    for info in infos.values():
        assert info['categories'] == [{'id': 1, 'name': 'person'}]
        for img in info['images']:
            assert (img['width'], img['height']) == (1280, 1024)
            assert osp.isfile(osp.join(llvip_root, img['file_name']))
            assert osp.isfile(osp.join(llvip_root, img['infrared_file_name']))
            assert img['file_name'].startswith('visible/')
            assert img['infrared_file_name'] == img['file_name'].replace(
                'visible/', 'infrared/', 1)
        ids = [ann['id'] for ann in info['annotations']]
        assert ids == list(range(1, len(ids) + 1))
        for ann in info['annotations']:
            x, y, w, h = ann['bbox']
            assert w > 0 and h > 0 and x >= 0 and y >= 0
            assert x + w <= 1280 and y + h <= 1024
            assert ann['area'] == w * h
            assert ann['category_id'] == 1 and ann['iscrowd'] == 0

    first = [a for a in test['annotations'] if a['image_id'] == 190001][0]
    # xmin 1018, ymin 330, xmax 1137, ymax 588
    assert first['bbox'] == [1018, 330, 119, 258]
    assert first['area'] == 119 * 258
    assert first['truncated'] == 0 and first['difficult'] == 0
    second = [a for a in test['annotations'] if a['image_id'] == 190001][1]
    assert second['bbox'] == [1204, 304, 76, 227]  # touches the right border, truncated
    assert second['truncated'] == 1

    coco = COCO(paths['test'])
    assert sorted(coco.getImgIds()) == [190001, 190002, 190003, 190004, 190005]
    assert len(coco.getAnnIds()) == 10
    assert len(coco.getAnnIds(imgIds=[190003])) == 5
    assert coco.loadCats(1)[0]['name'] == 'person'
    assert len(COCO(paths['train']).getAnnIds()) == 3


def test_deterministic_and_options(llvip_root, tmp_path):
    a = create_llvip_infos(llvip_root, str(tmp_path / 'a'), extra_tag='x', splits=('test', ))
    b = create_llvip_infos(llvip_root, str(tmp_path / 'b'), extra_tag='x', splits='test')
    assert list(a) == list(b) == ['test', 'report']
    assert osp.basename(a['test']) == 'x_infos_test.json'
    with open(a['test'], 'rb') as fa, open(b['test'], 'rb') as fb:
        assert fa.read() == fb.read()


def _expect_error(root, tmp_path, offending, error=DatasetFormatError, **kwargs):
    out_dir = kwargs.pop('out_dir', tmp_path / 'out')
    before = _tree_hash(root)
    with pytest.raises(error) as excinfo:
        create_llvip_infos(str(root), str(out_dir), **kwargs)
    assert str(offending) in str(excinfo.value)
    if error is DatasetFormatError:
        assert excinfo.value.path == str(offending)
    assert _all_files(out_dir) == []
    assert _tree_hash(root) == before
    return excinfo.value


def test_missing_infrared_partner(llvip_copy, tmp_path):
    os.remove(llvip_copy / 'infrared' / 'test' / '190003.jpg')
    err = _expect_error(llvip_copy, tmp_path, llvip_copy / 'visible' / 'test' / '190003.jpg')
    assert str(llvip_copy / 'infrared' / 'test' / '190003.jpg') in str(err)


def test_missing_visible_partner(llvip_copy, tmp_path):
    os.remove(llvip_copy / 'visible' / 'train' / '010005.jpg')
    _expect_error(llvip_copy, tmp_path, llvip_copy / 'infrared' / 'train' / '010005.jpg')


def test_truncated_xml(llvip_copy, tmp_path):
    xml = llvip_copy / 'Annotations' / '190002.xml'
    xml.write_text(xml.read_text()[:300])
    err = _expect_error(llvip_copy, tmp_path, xml)
    assert 'malformed' in str(err)


def test_missing_xml(llvip_copy, tmp_path):
    xml = llvip_copy / 'Annotations' / '190004.xml'
    os.remove(xml)
    _expect_error(llvip_copy, tmp_path, xml)


@pytest.mark.parametrize('modality', ['visible', 'infrared'])
def test_size_mismatch(llvip_copy, tmp_path, modality):
    from PIL import Image
    img = llvip_copy / modality / 'test' / '190005.jpg'
    with Image.open(img) as im:
        small = im.resize((640, 512))
    small.save(img)
    err = _expect_error(llvip_copy, tmp_path, img)
    assert '640x512' in str(err) and '1280x1024' in str(err)


def test_size_mismatch_in_xml(llvip_copy, tmp_path):
    xml = llvip_copy / 'Annotations' / '190001.xml'
    xml.write_text(xml.read_text().replace('<height>1024</height>', '<height>1000</height>'))
    # both boxes still fit in 1280x1000, so the image header check is what fires
    err = _expect_error(llvip_copy, tmp_path, llvip_copy / 'visible' / 'test' / '190001.jpg')
    assert str(xml) in str(err)


@pytest.mark.parametrize('old,new,words', [
    ('<size>\n\t\t<width>1280</width>\n\t\t<height>1024</height>\n\t\t<depth>1</depth>\n\t</size>',
     '', 'no <size>'),
    ('<ymax>866</ymax>', '', 'object 0 <bndbox> has no <ymax>'),
    ('<xmin>259</xmin>', '<xmin>25x9</xmin>', 'object 0 <bndbox> <xmin> is not a number'),
    ('<name>person</name>', '<name>car</name>', "object 0 has class 'car'"),
    ('<xmax>376</xmax>', '<xmax>1300</xmax>', 'object 0 box'),
    ('<xmax>376</xmax>', '<xmax>259</xmax>', 'object 0 has a box of non-positive size'),
    ('<ymin>569</ymin>', '<ymin>-1</ymin>', 'outside'),
])
def test_bad_xml_fields(llvip_copy, tmp_path, old, new, words):
    xml = llvip_copy / 'Annotations' / '190002.xml'
    text = xml.read_text()
    assert old in text
    xml.write_text(text.replace(old, new))
    err = _expect_error(llvip_copy, tmp_path, xml)
    assert words in str(err)


def test_bad_object_index_named(llvip_copy, tmp_path):
    xml = llvip_copy / 'Annotations' / '190003.xml'
    text = xml.read_text()
    xml.write_text(text.replace('<ymax>972</ymax>', '<ymax>1025</ymax>'))
    err = _expect_error(llvip_copy, tmp_path, xml)
    assert 'object 2' in str(err)


def test_missing_split_folder(llvip_copy, tmp_path):
    shutil.rmtree(llvip_copy / 'infrared' / 'train')
    _expect_error(llvip_copy, tmp_path, llvip_copy / 'infrared' / 'train')


def test_unknown_split(llvip_copy, tmp_path):
    _expect_error(llvip_copy, tmp_path, llvip_copy / 'visible' / 'val', splits=('val', ))


def test_error_in_later_split_writes_nothing(llvip_copy, tmp_path):
    # train is valid; test breaks: the train json must not be written either
    xml = llvip_copy / 'Annotations' / '190005.xml'
    xml.write_text('<annotation><size>')
    _expect_error(llvip_copy, tmp_path, xml)


def test_out_dir_inside_root(llvip_copy, tmp_path):
    out_dir = llvip_copy / 'infos'
    with pytest.raises(ValueError, match='inside the dataset'):
        create_llvip_infos(str(llvip_copy), str(out_dir))
    assert not out_dir.exists()
    with pytest.raises(ValueError, match='inside the dataset'):
        create_llvip_infos(str(llvip_copy), str(llvip_copy))
    assert _all_files(llvip_copy) == _all_files(
        osp.join(osp.dirname(__file__), '..', 'data', 'llvip', 'LLVIP'))


def test_ids_equal_after_removing_leading_zeros(llvip_copy, tmp_path):
    """``010005`` (train) and ``10005`` (test) would both become COCO image id 10005."""
    for modality in ('visible', 'infrared'):
        shutil.copy(llvip_copy / modality / 'train' / '010005.jpg',
                    llvip_copy / modality / 'test' / '10005.jpg')
    shutil.copy(llvip_copy / 'Annotations' / '010005.xml', llvip_copy / 'Annotations' / '10005.xml')
    err = _expect_error(llvip_copy, tmp_path, llvip_copy / 'visible' / 'test' / '10005.jpg')
    assert 'image id 10005' in str(err) and '010005.jpg' in str(err)


def bomb_header(width=100000, height=100000):
    """A PNG whose header claims ``width x height`` pixels (no pixel data follows)."""
    import struct
    import zlib

    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data
                + struct.pack('>I', zlib.crc32(kind + data)))

    ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', b'')
            + chunk(b'IEND', b''))


def test_decompression_bomb_header_refused(llvip_copy, tmp_path, monkeypatch):
    from PIL import Image
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', None)  # as some libraries set it
    bomb = llvip_copy / 'visible' / 'test' / '190001.jpg'
    bomb.write_bytes(bomb_header())
    err = _expect_error(llvip_copy, tmp_path, bomb)
    assert 'decompression bomb' in str(err)


def test_unreadable_header_refused(llvip_copy, tmp_path):
    bad = llvip_copy / 'infrared' / 'test' / '190002.jpg'
    bad.write_bytes(b'\xff\xd8\xff' + b'\x00' * 10)
    err = _expect_error(llvip_copy, tmp_path, bad)
    assert 'cannot read image' in str(err)


def test_failure_in_the_middle_of_the_commit_keeps_the_previous_output(
        llvip_root, tmp_path, monkeypatch):
    out_dir = tmp_path / 'out'
    create_llvip_infos(llvip_root, str(out_dir), splits=('test', ))
    before = {name: (out_dir / name).read_bytes() for name in _all_files(out_dir)}

    real_replace = os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 3:  # new train in, old test aside, then new test in fails
            raise OSError(28, 'No space left on device', dst)
        return real_replace(src, dst)

    monkeypatch.setattr(os, 'replace', failing_replace)
    with pytest.raises(OSError, match='No space left'):
        create_llvip_infos(llvip_root, str(out_dir))
    monkeypatch.setattr(os, 'replace', real_replace)
    assert len(calls) == 5  # 2 renames, the failing one, 2 renames back
    assert {name: (out_dir / name).read_bytes() for name in _all_files(out_dir)} == before
    assert sorted(os.listdir(out_dir)) == sorted(before)  # no temporary or aside file left


def test_name_taken_by_a_folder_keeps_the_previous_output(llvip_root, tmp_path):
    out_dir = tmp_path / 'out'
    create_llvip_infos(llvip_root, str(out_dir), splits=('test', ))
    before = {name: (out_dir / name).read_bytes() for name in _all_files(out_dir)}
    (out_dir / 'llvip_infos_train.json').mkdir()
    with pytest.raises(IsADirectoryError):
        create_llvip_infos(llvip_root, str(out_dir))
    assert {name: (out_dir / name).read_bytes() for name in _all_files(out_dir)} == before
    assert (out_dir / 'llvip_infos_train.json').is_dir()
