import os.path as osp

import pytest

TEST_DATA = osp.join(osp.dirname(__file__), 'data')


@pytest.fixture
def test_data_root():
    """Folder of the small real samples bundled with the tests (see tests/data/README.md)."""
    return TEST_DATA
