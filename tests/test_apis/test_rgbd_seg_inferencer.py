"""RGBDSegInferencer (mmseg's MMSegInferencer for RGB + depth) on real NYUDv2 frames with a
GeminiFusion checkpoint the test writes."""
import os.path as osp

import mmcv
import numpy as np
import pytest

from tests.inference_fixtures import GEMINI_SEG_CFG, NYUDV2

pytestmark = pytest.mark.default_scope('mmseg')

IMG = osp.join(NYUDV2, 'rgb', '000433.png')
DEPTH = osp.join(NYUDV2, 'depth', '000433.png')


@pytest.fixture(scope='module')
def inferencer(gemini_seg_ckpt):
    import mmfusion.seg  # noqa: F401
    from mmfusion.apis.rgbd_seg_inferencer import RGBDSegInferencer
    inferencer = RGBDSegInferencer(GEMINI_SEG_CFG, gemini_seg_ckpt, device='cpu')
    inferencer.show_progress = False
    return inferencer


def test_ensemble_and_streams_with_picture(inferencer, tmp_path):
    result = inferencer(dict(img=IMG, depth=DEPTH), out_dir=str(tmp_path), return_streams=True,
                        return_vis=True)
    pred = result['predictions']
    assert set(pred) == {'sem_seg', 'sem_seg_rgb', 'sem_seg_depth'}
    for value in pred.values():
        assert value.shape == (480, 640) and 0 <= value.min() and value.max() < 40
    assert len(inferencer.model.dataset_meta['classes']) == 40
    picture = mmcv.imread(str(tmp_path / 'vis' / '000433.png'), channel_order='rgb')
    np.testing.assert_array_equal(picture, result['visualization'])
    rgb = mmcv.imread(IMG, channel_order='rgb')
    overlay, depth_panel = picture[:480, :640], picture[:480, 640:1280]
    assert (np.abs(overlay.astype(int) - rgb.astype(int)).max(-1) > 30).mean() > 0.5
    # depth panel: holes (0 m) black, the rest colour-mapped
    depth = mmcv.imread(DEPTH, flag='unchanged')
    assert (depth_panel[depth == 0] == 0).all() and depth_panel[depth > 0].mean() > 30
    assert picture.shape[0] > 960  # a second row (the streams) and the legend
    assert (tmp_path / 'pred' / '00000000_pred.png').is_file()


def test_array_inputs_and_stock_output(inferencer):
    by_path = inferencer(dict(img=IMG, depth=DEPTH))['predictions']
    assert isinstance(by_path, np.ndarray) and by_path.shape == (480, 640)
    metres = mmcv.imread(DEPTH, flag='unchanged').astype(np.float32) / 5000
    by_array = inferencer([dict(img=mmcv.imread(IMG), depth=metres)])['predictions']
    np.testing.assert_array_equal(by_array, by_path)


def test_bad_inputs_name_the_problem(inferencer):
    with pytest.raises(ValueError, match='dict\\(img=rgb, depth=depth\\)'):
        inferencer(IMG)
    with pytest.raises(ValueError, match='16-bit'):
        inferencer(dict(img=IMG, depth=IMG))
    with pytest.raises(ValueError, match='pixel-aligned'):
        inferencer(dict(img=IMG, depth=np.zeros((10, 10), np.float32)))
