"""The shared all-or-nothing commits of the converters, with failures injected mid-commit."""
import os
import os.path as osp

import pytest

from mmfusion.converters._io import (DatasetFormatError, Staging, commit_staged, open_text,
                                     write_json_outputs)


def _snapshot(folder):
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, folder)] = f.read()
    return out


def _fail_at(monkeypatch, n):
    """Make the ``n``-th ``os.replace`` from now raise ENOSPC; return the call log."""
    real = os.replace
    calls = []

    def replace(src, dst):
        calls.append((src, dst))
        if len(calls) == n:
            raise OSError(28, 'No space left on device', dst)
        return real(src, dst)

    monkeypatch.setattr(os, 'replace', replace)
    return calls


@pytest.mark.parametrize('fail_at', [1, 2, 3, 4, 5])
def test_staging_commit_rolls_back_at_every_step(tmp_path, monkeypatch, fail_at):
    out = tmp_path / 'out'
    write_json_outputs(str(out), {'a.json': 1, 'b.json': 2})
    before = _snapshot(out)
    calls = _fail_at(monkeypatch, fail_at)
    with pytest.raises(OSError, match='No space left'):
        write_json_outputs(str(out), {'a.json': 10, 'b.json': 20, 'c.json': 30})
    monkeypatch.undo()
    assert len(calls) >= fail_at
    assert _snapshot(out) == before
    assert sorted(os.listdir(out)) == ['a.json', 'b.json']  # no temporary or aside file


def test_staging_commit_replaces_everything_on_success(tmp_path):
    out = tmp_path / 'out'
    write_json_outputs(str(out), {'a.json': 1})
    write_json_outputs(str(out), {'a.json': 2, 'sub/b.json': 3})
    assert _snapshot(out) == {'a.json': b'2', osp.join('sub', 'b.json'): b'3'}


def test_staging_abort_removes_created_folders(tmp_path):
    staging = Staging()
    tmp = staging.tmp_for(str(tmp_path / 'new' / 'deep' / 'x.txt'))
    assert osp.isfile(tmp)
    staging.abort()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('fail_at', [1, 2, 3])
def test_commit_staged_rolls_back(tmp_path, monkeypatch, fail_at):
    out, stage, backup = tmp_path / 'out', tmp_path / 'stage', tmp_path / 'backup'
    (out / 'infos').mkdir(parents=True)
    (out / 'infos' / 'old.pkl').write_text('old')
    (out / 'report.json').write_text('old report')
    stage.mkdir()
    (stage / 'infos').mkdir()
    (stage / 'infos' / 'new.pkl').write_text('new')
    (stage / 'report.json').write_text('new report')
    before = _snapshot(out)
    _fail_at(monkeypatch, fail_at)
    with pytest.raises(OSError):
        commit_staged(str(stage), str(out), ['infos', 'report.json'], str(backup))
    monkeypatch.undo()
    assert _snapshot(out) == before


def test_open_text_names_line_of_bad_byte(tmp_path):
    path = tmp_path / 'x.txt'
    path.write_bytes(b'ok\r\nfine\n\xe9t\xe9\n')
    with pytest.raises(DatasetFormatError, match=r'line 3: not UTF-8 text \(byte 0xe9'):
        open_text(str(path))
    path.write_bytes(b'a\r\nb\n')
    assert open_text(str(path)).read().splitlines() == ['a', 'b']
