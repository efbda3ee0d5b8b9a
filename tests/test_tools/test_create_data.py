"""tools/create_data.py dispatches to the converters and reports bad input clearly."""
import json
import os
import os.path as osp
import shutil

import pytest

from tests.utils import PYTHON, REPO_ROOT, load_tool, run_tool

main = load_tool('tools/create_data.py', 'mmfusion_create_data').main


def test_llvip_and_nyudv2_through_the_tool(test_data_root, tmp_path):
    assert main(['llvip', '--root-path', osp.join(test_data_root, 'llvip', 'LLVIP'),
                 '--out-dir', str(tmp_path / 'llvip')]) == 0
    with open(tmp_path / 'llvip' / 'llvip_infos_test.json') as f:
        assert len(json.load(f)['images']) == 5
    # the bundled sample lists the same frames in train.txt and val.txt: an explicit opt-in
    assert main(['nyudv2', '--root-path', osp.join(test_data_root, 'nyudv2'),
                 '--out-dir', str(tmp_path / 'nyu')]) == 2
    assert main(['nyudv2', '--root-path', osp.join(test_data_root, 'nyudv2'),
                 '--out-dir', str(tmp_path / 'nyu'), '--allow-split-overlap']) == 0
    assert (tmp_path / 'nyu' / 'train.txt').is_file()
    assert (tmp_path / 'nyu' / 'conversion_report.json').is_file()


def test_kitti_through_the_tool_as_a_script(test_data_root, tmp_path):
    proc = run_tool([PYTHON, 'tools/create_data.py', 'kitti', '--root-path',
                     osp.join(test_data_root, 'kitti'), '--out-dir', str(tmp_path / 'kitti'),
                     '--extra-tag', 'sample'], cwd=REPO_ROOT)
    assert (tmp_path / 'kitti' / 'sample_infos_trainval.pkl').is_file()
    assert 'trainval' in proc.stdout


def test_bad_input_exits_2_naming_the_file(test_data_root, tmp_path, capsys):
    root = tmp_path / 'LLVIP'
    shutil.copytree(osp.join(test_data_root, 'llvip', 'LLVIP'), root)
    bad = root / 'Annotations' / '190003.xml'
    bad.write_text('<annotation><size>')
    assert main(['llvip', '--root-path', str(root), '--out-dir', str(tmp_path / 'out')]) == 2
    assert str(bad) in capsys.readouterr().err
    assert not (tmp_path / 'out').exists() or not any((tmp_path / 'out').iterdir())


def _llvip_args(test_data_root, out_dir):
    return ['llvip', '--root-path', osp.join(test_data_root, 'llvip', 'LLVIP'),
            '--out-dir', str(out_dir)]


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and 'Traceback' not in '\n'.join(err)
    return err[-1]


def test_out_dir_is_a_file(test_data_root, tmp_path, capsys):
    target = tmp_path / 'taken'
    target.write_text('a file, not a folder')
    assert main(_llvip_args(test_data_root, target)) == 2
    line = _one_error_line(capsys)
    assert str(target) in line and line.startswith('create_data.py llvip: error: ')
    assert target.read_text() == 'a file, not a folder'


def test_out_dir_under_a_file(test_data_root, tmp_path, capsys):
    target = tmp_path / 'taken'
    target.write_text('x')
    assert main(_llvip_args(test_data_root, target / 'sub')) == 2
    assert f'{target}: File exists' in _one_error_line(capsys)


@pytest.mark.parametrize('code,reason', [(28, 'No space left on device'),
                                         (13, 'Permission denied')])
def test_os_error_while_committing_keeps_the_previous_output(test_data_root, tmp_path, capsys,
                                                             monkeypatch, code, reason):
    out_dir = tmp_path / 'out'
    assert main(_llvip_args(test_data_root, out_dir)) == 0
    before = {p.name: p.read_bytes() for p in out_dir.iterdir()}
    capsys.readouterr()
    real_replace = os.replace
    failed = []

    def failing(src, dst):  # the new train json cannot be renamed in (once)
        if osp.basename(str(dst)) == 'llvip_infos_train.json' and not failed:
            failed.append(dst)
            raise OSError(code, reason, str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, 'replace', failing)
    assert main(_llvip_args(test_data_root, out_dir)) == 2
    monkeypatch.setattr(os, 'replace', real_replace)
    line = _one_error_line(capsys)
    assert reason in line and str(out_dir) in line
    assert {p.name: p.read_bytes() for p in out_dir.iterdir()} == before


def test_non_utf8_file_named(tmp_path, capsys):
    root = tmp_path / 'kitti'
    (root / 'ImageSets').mkdir(parents=True)
    bad = root / 'ImageSets' / 'train.txt'
    bad.write_bytes(b'000000\n\xff\xfe\n')
    assert main(['kitti', '--root-path', str(root), '--out-dir', str(tmp_path / 'out')]) == 2
    line = _one_error_line(capsys)
    assert str(bad) in line and 'line 2: not UTF-8' in line


def test_debug_shows_the_traceback(test_data_root, tmp_path):
    target = tmp_path / 'taken'
    target.write_text('x')
    with pytest.raises(OSError):
        main(_llvip_args(test_data_root, target) + ['--debug'])
