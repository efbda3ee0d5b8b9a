"""PairedDetInferencer (mmdet's DetInferencer for RGB + infrared pairs) on real LLVIP pairs,
for Fusion-Mamba and DAMF, with checkpoints the tests write from freshly built models."""
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch

from tests.inference_fixtures import DAMF_CFG, FUSION_MAMBA_CFG, LLVIP, changed_fraction

pytestmark = pytest.mark.default_scope('mmdet')

RGB = osp.join(LLVIP, 'visible', 'test', '190003.jpg')
IR = osp.join(LLVIP, 'infrared', 'test', '190003.jpg')


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    """One torch thread: the selective scans are thousands of small ops (faster so on 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def inferencer(fusion_mamba_ckpt):
    import mmfusion.det  # noqa: F401
    from mmfusion.apis.paired_det_inferencer import PairedDetInferencer
    return PairedDetInferencer(FUSION_MAMBA_CFG, fusion_mamba_ckpt, device='cpu',
                               show_progress=False)


def test_paths_give_boxes_json_and_a_two_modality_picture(inferencer, tmp_path):
    out = str(tmp_path)
    result = inferencer(dict(img=RGB, img_ir=IR), out_dir=out, pred_score_thr=0.5,
                        no_save_pred=False, return_vis=True)
    pred = result['predictions'][0]
    assert set(pred) == {'labels', 'scores', 'bboxes'}
    boxes, scores = np.array(pred['bboxes']), np.array(pred['scores'])
    assert boxes.shape == (len(scores), 4) and (scores > 0.5).sum() > 0
    assert (boxes[:, 2] >= boxes[:, 0]).all() and boxes[:, 2].max() > 160  # frame pixels
    assert inferencer.model.dataset_meta['classes'] == ('person', )
    assert osp.isfile(osp.join(out, 'preds', '190003.json'))
    drawn = mmcv.imread(osp.join(out, 'vis', '190003.jpg'))
    rgb, ir = mmcv.imread(RGB), mmcv.imread(IR)
    assert drawn.shape == (1024, 2560, 3)  # visible | infrared
    left, right = drawn[:, :1280], drawn[:, 1280:]
    assert changed_fraction(left, rgb) > 1e-3 and changed_fraction(right, ir) > 1e-3
    # the drawing is the same boxes on both: where the visible side changed, so did the IR side
    assert result['visualization'][0].shape == (1024, 2560, 3)


def test_arrays_lists_and_folders(inferencer):
    by_path = inferencer(dict(img=RGB, img_ir=IR))['predictions'][0]
    arrays = [dict(img=mmcv.imread(RGB), img_ir=mmcv.imread(IR))]
    by_array = inferencer(arrays)['predictions'][0]
    np.testing.assert_allclose(by_array['bboxes'], by_path['bboxes'], atol=1e-3)
    folder = inferencer(dict(img=osp.dirname(RGB), img_ir=osp.dirname(IR)))['predictions']
    assert len(folder) == 5  # the 5 pairs of the sample's test split


def test_bad_inputs_name_the_problem(inferencer):
    with pytest.raises(ValueError, match='dict\\(img=visible, img_ir=infrared\\)'):
        inferencer(RGB)
    small = mmcv.imrescale(mmcv.imread(IR), 0.5)
    with pytest.raises(ValueError, match='registered'):
        inferencer(dict(img=mmcv.imread(RGB), img_ir=small))


def test_damf_config(damf_ckpt, tmp_path):
    import mmfusion.det  # noqa: F401
    from mmfusion.apis.paired_det_inferencer import PairedDetInferencer
    inferencer = PairedDetInferencer(DAMF_CFG, damf_ckpt, device='cpu', show_progress=False)
    result = inferencer(dict(img=RGB, img_ir=IR), out_dir=str(tmp_path), pred_score_thr=0.0)
    pred = result['predictions'][0]
    assert len(pred['scores']) == len(pred['bboxes']) == len(pred['labels']) > 0
    drawn = mmcv.imread(str(tmp_path / 'vis' / '190003.jpg'))
    assert drawn.shape == (1024, 2560, 3)
    assert changed_fraction(drawn[:, :1280], mmcv.imread(RGB)) > 1e-4
