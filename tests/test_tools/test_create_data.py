"""tools/create_data.py dispatches to the converters and reports bad input clearly."""
import json
import os.path as osp
import shutil


from tests.utils import PYTHON, REPO_ROOT, load_tool, run_tool

main = load_tool('tools/create_data.py', 'mmfusion_create_data').main


def test_llvip_and_nyudv2_through_the_tool(test_data_root, tmp_path):
    assert main(['llvip', '--root-path', osp.join(test_data_root, 'llvip', 'LLVIP'),
                 '--out-dir', str(tmp_path / 'llvip')]) == 0
    with open(tmp_path / 'llvip' / 'llvip_infos_test.json') as f:
        assert len(json.load(f)['images']) == 5
    assert main(['nyudv2', '--root-path', osp.join(test_data_root, 'nyudv2'),
                 '--out-dir', str(tmp_path / 'nyu')]) == 0
    assert (tmp_path / 'nyu' / 'train.txt').is_file()


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
