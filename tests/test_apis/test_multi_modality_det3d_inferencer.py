"""mmdet3d's own MultiModalityDet3DInferencer, unchanged, on SSLFusion and GeminiFusion's MVX-Net
drop-in (configs carry the visualizer; pictures need no open3d)."""
import os.path as osp

import mmcv
import mmengine
import numpy as np
import pytest

from tests.inference_fixtures import GEMINI_MVXNET_CFG, SSLFUSION_CFG

pytestmark = pytest.mark.default_scope('mmdet3d')


@pytest.fixture(scope='module')
def frame(kitti_infos_root, tmp_path_factory):
    infos = mmengine.load(osp.join(kitti_infos_root, 'kitti_infos_trainval.pkl'))
    path = str(tmp_path_factory.mktemp('frame') / '000001.pkl')
    mmengine.dump(dict(metainfo=infos['metainfo'], data_list=[infos['data_list'][1]]), path)
    return dict(points=osp.join(kitti_infos_root, 'training', 'velodyne_reduced', '000001.bin'),
                img=osp.join(kitti_infos_root, 'training', 'image_2', '000001.png'), infos=path)


def run_stock_inferencer(config, ckpt, frame, out_dir):
    from mmdet3d.apis import MultiModalityDet3DInferencer
    inferencer = MultiModalityDet3DInferencer(config, ckpt, device='cpu')
    inferencer.show_progress = False
    result = inferencer(dict(frame), out_dir=out_dir, pred_score_thr=0.0, no_save_pred=False)
    pred = result['predictions'][0]
    assert set(pred) >= {'labels_3d', 'scores_3d', 'bboxes_3d', 'box_type_3d'}
    assert len(pred['bboxes_3d']) == len(pred['scores_3d']) > 0
    assert all(len(box) == 7 for box in pred['bboxes_3d'])
    assert osp.isfile(osp.join(out_dir, 'preds', '000001.json'))
    picture = mmcv.imread(osp.join(out_dir, 'vis_camera', 'CAM2', '000001.png'))
    img = mmcv.imread(frame['img'])
    h, w = img.shape[:2]
    assert picture.shape[0] == 2 * h and picture.shape[1] > w  # camera views + BEV
    assert (picture[h:, :w] != img).any() or (picture[:h, :w] == img).all()
    bev = picture[:, w:]
    assert (bev > 100).any(axis=-1).mean() > 0.001  # points and boxes drawn
    return pred


def test_sslfusion(sslfusion_ckpt, frame, tmp_path):
    import mmfusion.det3d  # noqa: F401
    pred = run_stock_inferencer(SSLFUSION_CFG, sslfusion_ckpt, frame, str(tmp_path))
    assert pred['box_type_3d'] == 'LiDAR'
    assert set(pred['labels_3d']) <= {0, 1, 2}


def test_gemini_fusion_mvxnet(gemini_mvxnet_ckpt, frame, tmp_path):
    from mmengine.config import Config

    import mmfusion.det3d  # noqa: F401
    cfg = Config.fromfile(GEMINI_MVXNET_CFG)
    cfg.model.test_cfg.pts.score_thr = 0.0  # an untrained model scores below the stock 0.1
    pred = run_stock_inferencer(cfg, gemini_mvxnet_ckpt, frame, str(tmp_path))
    assert np.isfinite(np.array(pred['bboxes_3d'])).all()
