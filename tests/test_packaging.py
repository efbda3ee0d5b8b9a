"""OpenMMLab packaging: model-index.yml and the per-project metafiles list every config, and
mim finds the installed package, its configs and its training tool."""
import glob
import os.path as osp

import yaml

from tests.utils import REPO_ROOT


def _load(relpath):
    with open(osp.join(REPO_ROOT, relpath)) as f:
        return yaml.safe_load(f)


def test_model_index_lists_every_project_config_once():
    index = _load('model-index.yml')
    metafiles = index['Import']
    projects = sorted(osp.basename(p) for p in glob.glob(osp.join(REPO_ROOT, 'projects', '*'))
                      if osp.isdir(p))
    assert sorted(m.split('/')[1] for m in metafiles) == projects
    for metafile in metafiles:
        meta = _load(metafile)
        project = metafile.split('/')[1]
        (collection, ) = meta['Collections']
        assert collection['Name'] == project
        assert collection['Paper']['Title'] and collection['Paper']['URL'].startswith('https://')
        assert osp.isfile(osp.join(REPO_ROOT, collection['README']))
        listed = [model['Config'] for model in meta['Models']]
        assert len(listed) == len(set(listed)), metafile
        on_disk = sorted(osp.relpath(p, REPO_ROOT) for p in glob.glob(
            osp.join(REPO_ROOT, 'projects', project, 'configs', '*.py')))
        assert sorted(listed) == on_disk, (metafile, set(listed) ^ set(on_disk))
        for model in meta['Models']:
            assert model['In Collection'] == project
            assert model['Name'] == osp.splitext(osp.basename(model['Config']))[0]
            assert model['Metadata']['Training Data']
            for result in model.get('Results', []):
                assert result['Task'] and result['Dataset'] and result['Metrics']
