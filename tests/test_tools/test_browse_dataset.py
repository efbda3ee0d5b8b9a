"""tools/analysis_tools/browse_dataset.py for each dataset family: paired RGB-IR (LLVIP),
RGB-D (NYUDv2), LiDAR + camera (KITTI); GT after the pipeline drawn on every modality."""
import glob
import os.path as osp

import mmcv
import numpy as np
import pytest

from tests.inference_fixtures import (FUSION_MAMBA_CFG, GEMINI_SEG_CFG, SSLFUSION_CFG,
                                      paired_cfg_options)
from tests.utils import load_tool


def browse(args):
    tool = load_tool('tools/analysis_tools/browse_dataset.py', 'browse_dataset')
    return tool.main(args)


def options(mapping):
    return ['--cfg-options'] + [f'{k}={v}' for k, v in mapping.items()]


@pytest.mark.default_scope('mmdet')
def test_paired_rgb_ir(llvip_infos, tmp_path):
    out = str(tmp_path / 'llvip')
    assert browse([FUSION_MAMBA_CFG, '--output-dir', out, '--not-show', '--phase', 'test']
                  + options(paired_cfg_options(llvip_infos['test']))) == 0
    pictures = sorted(glob.glob(osp.join(out, '*.png')))
    assert len(pictures) == 5
    picture = mmcv.imread(pictures[0], channel_order='rgb')
    h, w2 = picture.shape[:2]
    assert w2 == 2 * 160 and h == 128  # the pipeline's 160x128 input, visible | infrared
    green = (picture[..., 1] > 150) & (picture[..., 0] < 80) & (picture[..., 2] < 80)
    assert green[:, :160].sum() > 10 and green[:, 160:].sum() > 10  # GT on both images


@pytest.mark.default_scope('mmseg')
def test_rgbd_nyudv2(tmp_path):
    out = str(tmp_path / 'nyu')
    assert browse([GEMINI_SEG_CFG, '--output-dir', out, '--not-show']) == 0
    pictures = sorted(glob.glob(osp.join(out, '*.png')))
    assert [osp.basename(p) for p in pictures] == ['000433.png', '000464.png']  # train.txt
    picture = mmcv.imread(pictures[0])
    assert picture.shape[1] == 2 * 320  # GT overlay | depth at the 320x240 test scale


@pytest.mark.default_scope('mmdet3d')
def test_lidar_camera_kitti(kitti_infos_root, tmp_path):
    out = str(tmp_path / 'kitti')
    root = kitti_infos_root.rstrip('/') + '/'
    mapping = {'train_dataloader.dataset.dataset.data_root': root,
               'train_dataloader.dataset.dataset.ann_file': 'kitti_infos_trainval.pkl',
               'test_dataloader.dataset.data_root': root}
    assert browse([SSLFUSION_CFG, '--output-dir', out, '--not-show', '--max-samples', '2']
                  + options(mapping)) == 0
    pictures = sorted(glob.glob(osp.join(out, '*.png')))
    assert [osp.basename(p) for p in pictures] == ['000000.png', '000001.png']
    img = mmcv.imread(osp.join(root, 'training', 'image_2', '000001.png'))
    picture = mmcv.imread(pictures[1])
    h, w = img.shape[:2]
    assert (np.abs(picture[:h, :w].astype(int) - img.astype(int)).max(-1) > 60).mean() > 1e-4


def test_bad_config_exits_2(tmp_path):
    assert browse([str(tmp_path / 'missing.py'), '--not-show']) == 2
