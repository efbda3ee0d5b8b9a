"""demo/*.py on the bundled real samples with checkpoints the tests write, and mmdet3d's own
(unchanged) demo/multi_modality_demo.py on an SSLFusion config."""
import json
import os.path as osp

import mmcv
import mmengine
import numpy as np
import pytest

from tests.inference_fixtures import (FUSION_MAMBA_CFG, GEMINI_SEG_CFG, LLVIP, NYUDV2,
                                      SSLFUSION_CFG, changed_fraction)
from tests.utils import PYTHON, REPO_ROOT, load_tool, run_tool

RGB = osp.join(LLVIP, 'visible', 'test', '190003.jpg')
IR = osp.join(LLVIP, 'infrared', 'test', '190003.jpg')
# mmdet3d v1.4.0 demo/multi_modality_demo.py, byte for byte (see tests/data/README.md)
STOCK_MM3D_DEMO = osp.join(REPO_ROOT, 'tests', 'data', 'mmdet3d_demo', 'multi_modality_demo.py')


@pytest.mark.default_scope('mmdet')
def test_paired_det_demo_draws_both_modalities(fusion_mamba_ckpt, tmp_path, capsys):
    demo = load_tool('demo/paired_det_demo.py', 'paired_det_demo')
    out = str(tmp_path / 'out')
    assert demo.main([FUSION_MAMBA_CFG, fusion_mamba_ckpt, RGB, IR, '--out-dir', out,
                      '--pred-score-thr', '0.5']) == 0
    with open(osp.join(out, 'preds', '190003.json')) as f:
        pred = json.load(f)
    assert (np.array(pred['scores']) > 0.5).sum() > 0
    drawn = mmcv.imread(osp.join(out, 'vis', '190003.jpg'))
    assert changed_fraction(drawn[:, :1280], mmcv.imread(RGB)) > 1e-3
    assert changed_fraction(drawn[:, 1280:], mmcv.imread(IR)) > 1e-3
    assert osp.join(out, 'vis') in capsys.readouterr().out
    assert demo.main([FUSION_MAMBA_CFG, fusion_mamba_ckpt, RGB, 'missing.jpg']) == 2


@pytest.mark.default_scope('mmseg')
def test_rgbd_seg_demo_overlay_depth_and_streams(gemini_seg_ckpt, tmp_path, capsys):
    demo = load_tool('demo/rgbd_seg_demo.py', 'rgbd_seg_demo')
    out = str(tmp_path / 'out')
    img, depth = osp.join(NYUDV2, 'rgb', '000433.png'), osp.join(NYUDV2, 'depth', '000433.png')
    assert demo.main([GEMINI_SEG_CFG, gemini_seg_ckpt, img, depth, '--out-dir', out,
                      '--streams']) == 0
    printed = capsys.readouterr().out
    assert 'sem_seg:' in printed and 'sem_seg_rgb:' in printed and 'sem_seg_depth:' in printed
    drawn = mmcv.imread(osp.join(out, 'vis', '000433.png'))
    rgb = mmcv.imread(img)
    # rows: [prediction | depth], [rgb stream | depth stream], then the legend
    assert drawn.shape[1] == 2 * rgb.shape[1] and drawn.shape[0] > 2 * rgb.shape[0]
    assert changed_fraction(drawn[:480, :640], rgb) > 0.05
    class_map = mmcv.imread(osp.join(out, 'pred', '00000000_pred.png'), flag='unchanged')
    assert class_map.shape == (480, 640) and class_map.max() < 40


@pytest.fixture(scope='module')
def one_frame(kitti_infos_root, tmp_path_factory):
    """Frame 000001 of the converted KITTI sample: point cloud, image, one-frame info file
    (as the stock mmdet3d demo needs), the full info file."""
    infos = mmengine.load(osp.join(kitti_infos_root, 'kitti_infos_trainval.pkl'))
    info = infos['data_list'][1]
    path = str(tmp_path_factory.mktemp('frame') / '000001.pkl')
    mmengine.dump(dict(metainfo=infos['metainfo'], data_list=[info]), path)
    return dict(pcd=osp.join(kitti_infos_root, 'training', 'velodyne_reduced', '000001.bin'),
                img=osp.join(kitti_infos_root, 'training', 'image_2', '000001.png'),
                one_info=path, infos=osp.join(kitti_infos_root, 'kitti_infos_trainval.pkl'))


@pytest.mark.default_scope('mmdet3d')
def test_multi_modality_demo_camera_and_bev(sslfusion_ckpt, one_frame, tmp_path, capsys):
    demo = load_tool('demo/multi_modality_demo.py', 'multi_modality_demo')
    out = str(tmp_path / 'out')
    assert demo.main([SSLFUSION_CFG, sslfusion_ckpt, one_frame['pcd'], one_frame['img'],
                      one_frame['infos'], '--out-dir', out, '--pred-score-thr', '0.3']) == 0
    assert '2 GT box(es)' in capsys.readouterr().out  # Car and Cyclist; the Truck is no class
    pred = mmengine.load(osp.join(out, 'preds', '000001.json'))
    assert len(pred['bboxes_3d']) == len(pred['scores_3d']) and pred['box_type_3d'] == 'LiDAR'
    assert all(len(b) == 7 for b in pred['bboxes_3d'])
    drawn = mmcv.imread(osp.join(out, 'vis', '000001.png'))
    img = mmcv.imread(one_frame['img'])
    h, w = img.shape[:2]
    assert drawn.shape[0] == 2 * h and drawn.shape[1] > w  # camera GT / pred, BEV right
    gt_view = drawn[:h, :w]
    changed = np.abs(gt_view.astype(int) - img.astype(int)).max(-1) > 60
    assert changed.mean() > 1e-4  # GT boxes drawn on the camera image
    green = (drawn[..., 1] > 150) & (drawn[..., 0] < 80) & (drawn[..., 2] < 80)  # BGR
    assert green[:, w:].sum() > 20  # GT boxes in the bird's-eye view


@pytest.mark.slow
def test_stock_mmdet3d_demo_runs_on_sslfusion(sslfusion_ckpt, one_frame, tmp_path):
    """mmdet3d's own demo script, unchanged, with MultiModalityDet3DInferencer."""
    out = str(tmp_path / 'stock')
    run_tool([PYTHON, STOCK_MM3D_DEMO, one_frame['pcd'], one_frame['img'],
              one_frame['one_info'], SSLFUSION_CFG, sslfusion_ckpt, '--device', 'cpu',
              '--out-dir', out, '--pred-score-thr', '0.0'], cwd=str(tmp_path))
    pred = mmengine.load(osp.join(out, 'preds', '000001.json'))
    assert set(pred) >= {'bboxes_3d', 'scores_3d', 'labels_3d', 'box_type_3d'}
    picture = osp.join(out, 'vis_camera', 'CAM2', '000001.png')
    assert osp.isfile(picture)
