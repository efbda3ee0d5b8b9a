"""tools/test.py --show-dir for one config of every method: host-aware hook keys, pictures under
<work_dir>/<timestamp>/<show_dir> as the stock tools, metrics written as without pictures."""
import glob
import json
import os.path as osp

import mmcv
import pytest

from tests.inference_fixtures import (DAMF_CFG, FUSION_MAMBA_CFG, GEMINI_SEG_CFG, SSLFUSION_CFG,
                                      paired_cfg_options)
from tests.utils import PYTHON, as_cli_options, run_tool


def run_test_tool(config, ckpt, work_dir, options=None, extra=()):
    """tools/test.py with --show-dir pictures; return (metrics, picture paths)."""
    args = [PYTHON, 'tools/test.py', config, ckpt, '--work-dir', work_dir,
            '--show-dir', 'pictures', *extra]
    if options:
        args += as_cli_options(options)
    run_tool(args, env={'OMP_NUM_THREADS': '1'})
    with open(osp.join(work_dir, 'test_metrics.json')) as f:
        metrics = json.load(f)
    pictures = sorted(glob.glob(osp.join(work_dir, '*', 'pictures', '*')))
    return metrics, pictures


@pytest.mark.slow
def test_sslfusion(sslfusion_ckpt, kitti_infos_root, tmp_path):
    root = kitti_infos_root.rstrip('/') + '/'
    options = {'test_dataloader.dataset.data_root': root,
               'test_dataloader.dataset.ann_file': 'kitti_infos_trainval.pkl',
               'test_evaluator.ann_file': root + 'kitti_infos_trainval.pkl'}
    metrics, pictures = run_test_tool(SSLFUSION_CFG, sslfusion_ckpt, str(tmp_path), options,
                                      ['--score-thr', '0.3'])
    assert 'Kitti metric/pred_instances_3d/KITTI/Car_3D_AP40_moderate_strict' in metrics
    assert len(pictures) == 6
    img = mmcv.imread(osp.join(root, 'training', 'image_2', osp.basename(pictures[1])))
    picture = mmcv.imread(pictures[1])
    assert picture.shape[0] == 2 * img.shape[0]  # camera GT over camera predictions, BEV right
    assert (picture[:img.shape[0], :img.shape[1]] != img).any()  # frame 000001 has GT boxes


@pytest.mark.slow
@pytest.mark.parametrize('which', ['fusion_mamba', 'damf'])
def test_paired_detectors(which, fusion_mamba_ckpt, damf_ckpt, llvip_infos, tmp_path):
    config, ckpt = dict(fusion_mamba=(FUSION_MAMBA_CFG, fusion_mamba_ckpt),
                        damf=(DAMF_CFG, damf_ckpt))[which]
    metrics, pictures = run_test_tool(config, ckpt, str(tmp_path),
                                      paired_cfg_options(llvip_infos['test']))
    assert 'coco/bbox_mAP_50' in metrics
    assert len(pictures) == 5
    picture = mmcv.imread(pictures[0])
    assert picture.shape == (2048, 2560, 3)  # GT row and prediction row, visible | infrared


def test_gemini_fusion_segmentation(gemini_seg_ckpt, tmp_path):
    metrics, pictures = run_test_tool(GEMINI_SEG_CFG, gemini_seg_ckpt, str(tmp_path))
    assert 'ensemble/mIoU' in metrics or any(k.endswith('mIoU') for k in metrics)
    assert [osp.basename(p) for p in pictures] == ['000433.png', '000464.png']  # val.txt
    picture = mmcv.imread(pictures[0])
    assert picture.shape[1] == 3 * 640  # GT | prediction | depth
