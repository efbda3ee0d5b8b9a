"""Tests of the NYUDv2 converter on the real sample and on small official-format fixtures."""
import hashlib
import json
import os
import os.path as osp
import shutil

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from mmfusion.converters._io import DatasetFormatError
from mmfusion.converters.nyudv2 import create_nyudv2_infos, load_class_mapping, load_splits

IDS = ('000433', '000464')


@pytest.fixture
def sample_root(test_data_root):
    return osp.join(test_data_root, 'nyudv2')


def _read(path):
    return np.array(Image.open(path))


def _tree_hash(root):
    """Hash of every file's relative path, content and mtime below ``root``."""
    h = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            path = osp.join(folder, name)
            h.update(osp.relpath(path, root).encode())
            h.update(str(os.stat(path).st_mtime_ns).encode())
            with open(path, 'rb') as f:
                h.update(f.read())
    return h.hexdigest()


def _all_files(root):
    return sorted(osp.relpath(osp.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


# ------------------------------------------------------------------------------------------
# real helper files
# ------------------------------------------------------------------------------------------


def test_real_splits(sample_root):
    splits = load_splits(osp.join(sample_root, 'official', 'splits.mat'), 1449)
    train, val = splits['train'], splits['val']
    assert len(train) == 795 and len(val) == 654
    assert not set(train.tolist()) & set(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(1, 1450))
    assert 433 in val and 464 in val  # the sample frames are test frames


def test_real_class_mapping(sample_root):
    path = osp.join(sample_root, 'official', 'classMapping40.mat')
    mat = scipy.io.loadmat(path)
    map_class = mat['mapClass'].ravel()
    assert map_class.shape == (894, ) and map_class.dtype == np.uint8
    assert map_class.min() == 1 and map_class.max() == 40
    assert set(map_class.tolist()) == set(range(1, 41))  # every 40-class id is used
    names = [str(n[0]) for n in mat['className'].ravel()]
    assert len(names) == 40 and names[:2] == ['wall', 'floor'] and names[-1] == 'otherprop'
    assert mat['allClassName'].size == 894
    lut = load_class_mapping(path)
    assert lut.shape == (895, ) and lut[0] == 255
    np.testing.assert_array_equal(lut[1:], map_class.astype(np.int64) - 1)


# ------------------------------------------------------------------------------------------
# official release (.mat) on a small fixture
# ------------------------------------------------------------------------------------------


def _make_official(folder, sample_root, labels=None, skip=(), split=None):
    """Write a 3-frame nyu_depth_v2_labeled.mat (official names, dtypes, transposed axes),
    a splits.mat and a copy of the real classMapping40.mat. Returns the frames (H x W)."""
    os.makedirs(folder, exist_ok=True)
    rgbs = [_read(osp.join(sample_root, 'rgb', i + '.png')) for i in IDS]
    deps = [_read(osp.join(sample_root, 'depth', i + '.png')) for i in IDS]
    rgbs.append(rgbs[0][::-1].copy())
    deps.append(deps[1][:, ::-1].copy())
    depths = [(d.astype(np.float64) / 5000).astype(np.float32) for d in deps]
    if labels is None:
        rng = np.random.default_rng(0)
        labels = [rng.integers(0, 895, size=(480, 640)).astype(np.uint16) for _ in range(3)]
        labels[0][0, :3] = [0, 1, 894]
    with h5py.File(osp.join(folder, 'nyu_depth_v2_labeled.mat'), 'w') as f:
        if 'images' not in skip:
            f['images'] = np.stack([r.transpose(2, 1, 0) for r in rgbs])  # (N, 3, W, H)
        if 'depths' not in skip:
            f['depths'] = np.stack([d.T for d in depths])  # (N, W, H)
        if 'labels' not in skip:
            f['labels'] = np.stack([lb.T for lb in labels])
    split = split or {'trainNdxs': [1, 3], 'testNdxs': [2]}
    scipy.io.savemat(osp.join(folder, 'splits.mat'),
                     {k: np.array(v, dtype=np.uint16).reshape(-1, 1) for k, v in split.items()})
    shutil.copy(osp.join(sample_root, 'official', 'classMapping40.mat'), folder)
    return rgbs, depths, labels


def test_official_mat(tmp_path, sample_root):
    src = tmp_path / 'nyu'
    rgbs, depths, labels = _make_official(str(src), sample_root)
    before = _tree_hash(str(src))
    out = tmp_path / 'out'
    paths = create_nyudv2_infos(str(src), str(out))
    assert paths == {'train': str(out / 'train.txt'), 'val': str(out / 'val.txt'),
                     'report': str(out / 'conversion_report.json')}
    with open(paths['report']) as f:
        report = json.load(f)
    assert [report['splits'][s]['frames'] for s in ('train', 'val')] == [2, 1]
    assert sum(report['splits']['val']['objects'].values()) == 640 * 480
    assert (out / 'train.txt').read_text() == (
        'rgb/000001.png\tmasks/000001.png\tdepth/000001.png\n'
        'rgb/000003.png\tmasks/000003.png\tdepth/000003.png\n')
    assert (out / 'val.txt').read_text() == 'rgb/000002.png\tmasks/000002.png\tdepth/000002.png\n'

    # mapping computed independently from the real file
    map_class = scipy.io.loadmat(str(src / 'classMapping40.mat'))['mapClass'].ravel()
    for k in range(3):
        fid = f'{k + 1:06d}'
        rgb = Image.open(out / 'rgb' / f'{fid}.png')
        assert rgb.mode == 'RGB' and rgb.size == (640, 480)
        np.testing.assert_array_equal(np.array(rgb), rgbs[k])
        depth = Image.open(out / 'depth' / f'{fid}.png')
        assert depth.size == (640, 480)
        depth = np.array(depth)
        assert depth.dtype == np.uint16
        assert np.abs(depth / 5000.0 - depths[k]).max() <= 1 / 5000
        if k < 2:  # the sample's own uint16 values come back exactly
            np.testing.assert_array_equal(depth, _read(osp.join(sample_root, 'depth',
                                                                IDS[k] + '.png')))
        mask = Image.open(out / 'masks' / f'{fid}.png')
        assert mask.mode == 'L'
        mask = np.array(mask)
        lab = labels[k].astype(np.int64)
        expected = np.where(lab == 0, 255, map_class[np.maximum(lab, 1) - 1].astype(np.int64) - 1)
        np.testing.assert_array_equal(mask, expected)
        assert np.all(mask[lab == 0] == 255)
        assert set(np.unique(mask).tolist()) <= set(range(40)) | {255}
    first = np.array(Image.open(out / 'masks' / '000001.png'))
    assert first[0, 0] == 255
    assert first[0, 1] == map_class[0] - 1 and first[0, 2] == map_class[-1] - 1
    assert before == _tree_hash(str(src))
    assert not [f for f in _all_files(str(out)) if f.endswith('.tmp')]


def test_official_mat_explicit_paths(tmp_path, sample_root):
    """The .mat given as root_path, the helpers given by keyword from elsewhere."""
    src = tmp_path / 'nyu'
    _make_official(str(src), sample_root)
    helpers = tmp_path / 'helpers'
    helpers.mkdir()
    os.replace(src / 'splits.mat', helpers / 's.mat')
    with pytest.raises(DatasetFormatError, match='splits.mat'):
        create_nyudv2_infos(str(src), str(tmp_path / 'out'))
    assert not (tmp_path / 'out').exists()
    paths = create_nyudv2_infos(str(src / 'nyu_depth_v2_labeled.mat'), str(tmp_path / 'out'),
                                splits_path=str(helpers / 's.mat'),
                                mapping_path=osp.join(sample_root, 'official',
                                                      'classMapping40.mat'))
    assert open(paths['val']).read().startswith('rgb/000002.png')


def test_output_inside_input_refused(tmp_path, sample_root):
    src = tmp_path / 'nyu'
    _make_official(str(src), sample_root)
    with pytest.raises(ValueError, match='inside'):
        create_nyudv2_infos(str(src), str(src / 'out'))
    assert not (src / 'out').exists()


# ------------------------------------------------------------------------------------------
# extracted folder (real sample)
# ------------------------------------------------------------------------------------------


def test_extracted_sample(tmp_path, sample_root):
    before = _tree_hash(sample_root)
    out = tmp_path / 'out'
    # the bundled sample lists its two frames in both splits (an overfitting sample)
    with pytest.raises(DatasetFormatError, match="frame 000433 is in split 'val' and also in "
                       "split 'train'"):
        create_nyudv2_infos(sample_root, str(out))
    assert not out.exists()
    paths = create_nyudv2_infos(sample_root, str(out), allow_split_overlap=True)
    assert paths == {'train': str(out / 'train.txt'), 'val': str(out / 'val.txt'),
                     'report': str(out / 'conversion_report.json')}
    for name in ('train.txt', 'val.txt'):
        assert (out / name).read_text() == open(osp.join(sample_root, name)).read()
    for sub in ('rgb', 'depth', 'masks'):
        for i in IDS:
            with open(osp.join(sample_root, sub, i + '.png'), 'rb') as f:
                assert (out / sub / f'{i}.png').read_bytes() == f.read()
    assert _all_files(str(out)) == sorted(
        ['train.txt', 'val.txt', 'conversion_report.json']
        + [f'{s}/{i}.png' for s in ('rgb', 'depth', 'masks') for i in IDS])
    # depth encoding: value / 5000 gives a plausible indoor range in metres
    depth = np.array(Image.open(out / 'depth' / '000433.png'))
    assert depth.dtype == np.uint16
    valid = depth[depth > 0] / 5000.0
    assert 0.5 < valid.min() and valid.max() < 10.0
    assert before == _tree_hash(sample_root)


# ------------------------------------------------------------------------------------------
# malformed inputs: error names the file, no partial output, input unchanged
# ------------------------------------------------------------------------------------------


@pytest.fixture
def sample_copy(tmp_path, sample_root):
    dst = tmp_path / 'sample'
    shutil.copytree(sample_root, dst)
    return dst


def _expect_failure(src, out, match_path, match=None):
    """Run the converter expecting a DatasetFormatError naming ``match_path``; check that out
    keeps only the file put there beforehand and the input is unchanged."""
    out.mkdir(exist_ok=True)
    (out / 'keep.txt').write_text('pre-existing')
    before = _tree_hash(str(src))
    with pytest.raises(DatasetFormatError) as err:
        create_nyudv2_infos(str(src), str(out), allow_split_overlap=True)
    assert str(match_path) in str(err.value)
    assert err.value.path == str(match_path)
    if match:
        assert match in str(err.value)
    assert _all_files(str(out)) == ['keep.txt']
    assert sorted(os.listdir(out)) == ['keep.txt']  # no leftover folders either
    assert before == _tree_hash(str(src))
    return err.value


def test_truncated_png(tmp_path, sample_copy):
    # 000433 is checked after 000464, so 000464 has already been staged when this fails
    bad = sample_copy / 'rgb' / '000433.png'
    data = bad.read_bytes()
    bad.write_bytes(data[:len(data) // 2])
    _expect_failure(sample_copy, tmp_path / 'out', bad, 'unreadable')


def test_mask_value_out_of_range(tmp_path, sample_copy):
    bad = sample_copy / 'masks' / '000433.png'
    mask = np.array(Image.open(bad))
    mask[10, 10] = 77
    Image.fromarray(mask).save(bad)
    _expect_failure(sample_copy, tmp_path / 'out', bad, '77')


def test_missing_depth(tmp_path, sample_copy):
    bad = sample_copy / 'depth' / '000433.png'
    bad.unlink()
    _expect_failure(sample_copy, tmp_path / 'out', bad, 'missing')


def test_depth_not_uint16(tmp_path, sample_copy):
    bad = sample_copy / 'depth' / '000433.png'
    Image.fromarray((np.array(Image.open(bad)) // 256).astype(np.uint8)).save(bad)
    _expect_failure(sample_copy, tmp_path / 'out', bad, 'bit depth 8')


def test_size_mismatch(tmp_path, sample_copy):
    bad = sample_copy / 'masks' / '000433.png'
    Image.fromarray(np.array(Image.open(bad))[:-1]).save(bad)
    _expect_failure(sample_copy, tmp_path / 'out', bad, 'differs')


def test_bad_list_line(tmp_path, sample_copy):
    bad = sample_copy / 'val.txt'
    bad.write_text('rgb/000433.png\tmasks/000433.png\n')
    _expect_failure(sample_copy, tmp_path / 'out', bad, 'line 1')


def test_mat_missing_labels(tmp_path, sample_root):
    src = tmp_path / 'nyu'
    _make_official(str(src), sample_root, skip=('labels', ))
    _expect_failure(src, tmp_path / 'out', src / 'nyu_depth_v2_labeled.mat', "'labels'")


def test_split_index_out_of_range(tmp_path, sample_root):
    src = tmp_path / 'nyu'
    _make_official(str(src), sample_root, split={'trainNdxs': [1, 4], 'testNdxs': [2]})
    err = _expect_failure(src, tmp_path / 'out', src / 'splits.mat', 'index 4 out of range 1..3')
    assert 'trainNdxs' in str(err)


def test_splits_overlap(tmp_path, sample_root):
    src = tmp_path / 'nyu'
    _make_official(str(src), sample_root, split={'trainNdxs': [1, 2], 'testNdxs': [2]})
    _expect_failure(src, tmp_path / 'out', src / 'splits.mat', 'share')


def test_mat_label_out_of_range(tmp_path, sample_root):
    src = tmp_path / 'nyu'
    labels = [np.zeros((480, 640), np.uint16) for _ in range(3)]
    labels[2][5, 5] = 895  # frame 3 is converted after frame 1 was staged
    _make_official(str(src), sample_root, labels=labels)
    _expect_failure(src, tmp_path / 'out', src / 'nyu_depth_v2_labeled.mat',
                    'frame 3: label value 895')


def test_mat_depth_in_millimetres(tmp_path, sample_root):
    src = tmp_path / 'nyu'
    _make_official(str(src), sample_root)
    with h5py.File(src / 'nyu_depth_v2_labeled.mat', 'r+') as f:
        f['depths'][...] = f['depths'][...] * 1000
    _expect_failure(src, tmp_path / 'out', src / 'nyu_depth_v2_labeled.mat', 'metres')


def test_neither_layout(tmp_path):
    src = tmp_path / 'empty'
    src.mkdir()
    _expect_failure(src, tmp_path / 'out', src, 'nyu_depth_v2_labeled.mat')


def test_extracted_missing_val_list(tmp_path, sample_copy):
    (sample_copy / 'val.txt').unlink()
    _expect_failure(sample_copy, tmp_path / 'out', sample_copy / 'val.txt', 'missing')


@pytest.mark.parametrize('name,text,words', [
    ('train.txt', '\n', 'lists no frames'),
    ('val.txt', 'rgb/000464.png\tmasks/000464.png\tdepth/000464.png\n' * 2, 'listed twice'),
])
def test_extracted_bad_split_lists(tmp_path, sample_copy, name, text, words):
    (sample_copy / name).write_text(text)
    _expect_failure(sample_copy, tmp_path / 'out', sample_copy / name, words)


def test_extracted_overlap_refused_by_default(tmp_path, sample_copy):
    out = tmp_path / 'out'
    with pytest.raises(DatasetFormatError, match='splits must not overlap') as err:
        create_nyudv2_infos(str(sample_copy), str(out))
    assert err.value.path == str(sample_copy / 'val.txt')
    assert not out.exists()
