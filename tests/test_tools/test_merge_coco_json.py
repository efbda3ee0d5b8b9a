"""tools/misc/merge_coco_json.py on the converted LLVIP sample (train + test splits)."""
import json
import os.path as osp

import pytest

from mmfusion.converters.llvip import create_llvip_infos
from tests.utils import REPO_ROOT, load_tool


def _tool():
    return load_tool('tools/misc/merge_coco_json.py', 'merge_coco_json')


def test_merge_llvip_splits(tmp_path, capsys):
    infos = create_llvip_infos(osp.join(REPO_ROOT, 'tests', 'data', 'llvip', 'LLVIP'),
                               str(tmp_path / 'infos'))
    out = str(tmp_path / 'all.json')
    assert _tool().main([infos['train'], infos['test'], '--out', out]) == 0
    merged = json.load(open(out))
    parts = [json.load(open(infos[s])) for s in ('train', 'test')]
    assert [im['id'] for im in merged['images']] == \
        [im['id'] for p in parts for im in p['images']] == [10005] + list(range(190001, 190006))
    assert all('infrared_file_name' in im for im in merged['images'])
    boxes = [a['bbox'] for p in parts for a in p['annotations']]
    assert [a['bbox'] for a in merged['annotations']] == boxes and len(boxes) == 13
    assert [a['id'] for a in merged['annotations']] == list(range(1, 14))
    assert merged['categories'] == parts[0]['categories']

    # the same file twice: repeated image ids are refused, nothing is written
    bad = str(tmp_path / 'bad.json')
    assert _tool().main([infos['test'], infos['test'], '--out', bad]) == 2
    assert 'image ids' in capsys.readouterr().err and not osp.exists(bad)


def test_merge_refuses_other_categories(tmp_path):
    a = dict(images=[dict(id=1)], annotations=[], categories=[dict(id=1, name='person')])
    b = dict(images=[dict(id=2)], annotations=[], categories=[dict(id=1, name='car')])
    paths = []
    for name, coco in (('a', a), ('b', b)):
        paths.append(str(tmp_path / f'{name}.json'))
        json.dump(coco, open(paths[-1], 'w'))
    with pytest.raises(ValueError, match='categories differ'):
        _tool().merge_coco(paths)
