"""tools/demo/paired_det_demo.py on a real LLVIP pair with a checkpoint the test writes."""
import json
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmfusion.det  # noqa: F401  (registers the modules, as custom_imports does)
from tests.utils import REPO_ROOT, load_tool

pytestmark = pytest.mark.default_scope('mmdet')

CONFIG = osp.join(REPO_ROOT, 'projects', 'FusionMamba', 'configs',
                  'fusion-mamba-small_yolox_1xb6-150e_llvip-sample.py')
LLVIP = osp.join(REPO_ROOT, 'tests', 'data', 'llvip', 'LLVIP')
RGB = osp.join(LLVIP, 'visible', 'test', '190003.jpg')
IR = osp.join(LLVIP, 'infrared', 'test', '190003.jpg')


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    """One torch thread: the selective scans are thousands of small ops, which on a shared
    2-core machine ran several times slower with 2 threads (measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _load_demo():
    return load_tool('tools/demo/paired_det_demo.py', 'paired_det_demo')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """State dict of the small Fusion-Mamba, its objectness/class biases raised so that the
    untrained model still predicts confident boxes (something to draw)."""
    init_default_scope('mmdet')  # module-scoped: set up before the autouse scope fixture
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(CONFIG).model)
    model.init_weights()
    head = model.bbox_head
    with torch.no_grad():
        for conv in list(head.multi_level_conv_obj) + list(head.multi_level_conv_cls):
            conv.bias.fill_(4.0)
    path = str(tmp_path_factory.mktemp('ckpt') / 'fusion_mamba_small.pth')
    torch.save(model.state_dict(), path)
    return path


def test_demo_draws_boxes_on_both_modalities(checkpoint, tmp_path):
    demo = _load_demo()
    out_dir = str(tmp_path / 'out')
    assert demo.main([CONFIG, checkpoint, '--rgb', RGB, '--ir', IR, '--out-dir', out_dir,
                      '--score-thr', '0.5']) == 0
    with open(osp.join(out_dir, '190003_pred.json')) as f:
        pred = json.load(f)
    assert pred['classes'] == ['person']
    scores = np.array(pred['scores'])
    boxes = np.array(pred['bboxes'])
    assert (scores >= 0.5).sum() > 0 and boxes.shape == (len(scores), 4)
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
    assert boxes[:, 2].max() > 160  # in frame pixels (1280x1024), not the 160x128 input
    for tag, src in (('rgb', RGB), ('ir', IR)):
        drawn = mmcv.imread(osp.join(out_dir, f'190003_{tag}.jpg'))
        original = mmcv.imread(src)
        assert drawn.shape == original.shape == (1024, 1280, 3)
        # boxes were drawn: many pixels changed beyond JPEG noise
        changed = (np.abs(drawn.astype(int) - original.astype(int)).max(-1) > 60).mean()
        assert changed > 1e-3, tag
    rgb_out = mmcv.imread(osp.join(out_dir, '190003_rgb.jpg'))
    ir_out = mmcv.imread(osp.join(out_dir, '190003_ir.jpg'))
    assert not np.array_equal(rgb_out, ir_out)


def test_demo_missing_image(checkpoint, tmp_path, capsys):
    demo = _load_demo()
    assert demo.main([CONFIG, checkpoint, '--rgb', RGB, '--ir', str(tmp_path / 'no.jpg'),
                      '--out-dir', str(tmp_path)]) == 2
    assert 'no.jpg not found' in capsys.readouterr().err
