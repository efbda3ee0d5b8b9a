import os
import os.path as osp

import pytest

TEST_DATA = osp.join(osp.dirname(__file__), 'data')
REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# Tools and training runs started by the tests import test helpers (``tests.*``) from the
# repository: put it first on the path of every subprocess, since mmsegmentation installs a
# top-level ``tests`` package into site-packages that would otherwise shadow ours.
os.environ['PYTHONPATH'] = os.pathsep.join(
    p for p in (REPO_ROOT, os.environ.get('PYTHONPATH', '')) if p)


@pytest.fixture(autouse=True)
def _default_scope(request):
    """Apply ``@pytest.mark.default_scope('<library>')`` (or a module's ``pytestmark``).

    mmengine's default scope is process-global and decides which library's registry a build
    resolves in; a test that builds from a registry states its library, as OpenMMLab's own
    tests do, instead of inheriting whatever an earlier test left.
    """
    marker = request.node.get_closest_marker('default_scope')
    if marker is not None:
        from mmengine.registry import init_default_scope
        init_default_scope(marker.args[0])


@pytest.fixture(autouse=True, scope='module')
def _module_default_scope(request):
    """The same for a module's ``pytestmark``, before its module-scoped fixtures build.

    Autouse fixtures run first within their scope, so a module-scoped fixture that builds from a
    registry sees the module's library, not whatever scope the previous module left.
    """
    marker = request.node.get_closest_marker('default_scope')
    if marker is not None:
        from mmengine.registry import init_default_scope
        init_default_scope(marker.args[0])


@pytest.fixture
def test_data_root():
    """Folder of the small real samples bundled with the tests (see tests/data/README.md)."""
    return TEST_DATA


@pytest.fixture(scope='session')
def kitti_infos_root(tmp_path_factory):
    """The bundled KITTI sample converted once per session by mmfusion's KITTI converter.

    Returns:
        str: A ``data_root`` holding ``kitti_infos_{train,val,trainval}.pkl`` and the
        ``training/`` folders, usable by stock mmdet3d KITTI configs.
    """
    from mmfusion.converters.kitti import create_kitti_infos
    out = str(tmp_path_factory.mktemp('kitti_infos'))
    create_kitti_infos(osp.join(TEST_DATA, 'kitti'), out)
    return out
