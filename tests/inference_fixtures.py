"""Configs of every method and checkpoints written from freshly built models, for the inference,
demo, ``tools/test.py --show-dir`` and ``browse_dataset`` tests.

Import the fixtures into a test module (``from tests.inference_fixtures import ...``). Each
checkpoint is a runner-style ``{'state_dict': ..., 'meta': {'dataset_meta': {'classes': ...}}}``
file of the model the config builds, with seeded random weights; the detection heads' biases are
raised where stated so that an untrained model still predicts confident boxes (something to draw).
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from tests.utils import REPO_ROOT

SSLFUSION_CFG = osp.join(REPO_ROOT, 'projects', 'SSLFusion', 'configs',
                         'sslfusion_r18-fpn_voxel-rcnn_1xb2-overfit_kitti-sample-3d-3class.py')
FUSION_MAMBA_CFG = osp.join(REPO_ROOT, 'projects', 'FusionMamba', 'configs',
                            'fusion-mamba-small_yolox_1xb6-150e_llvip-sample.py')
DAMF_CFG = osp.join(REPO_ROOT, 'projects', 'DAMF', 'configs',
                    'damf-stage0_vit-tiny-detr_1xb2-300e_llvip-sample.py')
GEMINI_SEG_CFG = osp.join(REPO_ROOT, 'projects', 'GeminiFusion', 'configs',
                          'geminifusion_mit-b0-tiny_1xb2-300it_nyudv2-sample-rgbd-240x320.py')
GEMINI_MVXNET_CFG = osp.join(
    REPO_ROOT, 'projects', 'GeminiFusion', 'configs',
    'mvxnet_gemini-fusion_fpn_dv_second_secfpn_1xb2-demo_kitti-sample-3d-3class.py')
LLVIP = osp.join(REPO_ROOT, 'tests', 'data', 'llvip', 'LLVIP')
NYUDV2 = osp.join(REPO_ROOT, 'tests', 'data', 'nyudv2')


def write_checkpoint(config, path, scope, classes, tweak=None, cfg_options=None):
    """Build ``config``'s model (seed 0), apply ``tweak(model)``, save a runner-style file.

    Returns:
        str: ``path``.
    """
    from mmengine.registry import MODELS
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    if tweak is not None:
        with torch.no_grad():
            tweak(model)
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=tuple(classes)))), path)
    return path


def _confident_yolox(model):
    head = model.bbox_head
    for conv in list(head.multi_level_conv_obj) + list(head.multi_level_conv_cls):
        conv.bias.fill_(4.0)


@pytest.fixture(scope='module')
def fusion_mamba_ckpt(tmp_path_factory):
    """Small Fusion-Mamba whose objectness/class biases are raised (confident boxes)."""
    path = str(tmp_path_factory.mktemp('ckpt') / 'fusion_mamba_small.pth')
    return write_checkpoint(FUSION_MAMBA_CFG, path, 'mmdet', ('person', ), _confident_yolox)


@pytest.fixture(scope='module')
def damf_ckpt(tmp_path_factory):
    """Tiny DAMF stage-0 detector as built."""
    path = str(tmp_path_factory.mktemp('ckpt') / 'damf_tiny.pth')
    return write_checkpoint(DAMF_CFG, path, 'mmdet', ('person', ))


@pytest.fixture(scope='module')
def gemini_seg_ckpt(tmp_path_factory):
    """Tiny GeminiFusion segmentor as built."""
    from mmfusion.datasets.nyudv2 import NYUDV2_CLASSES
    path = str(tmp_path_factory.mktemp('ckpt') / 'geminifusion_tiny.pth')
    return write_checkpoint(GEMINI_SEG_CFG, path, 'mmseg', NYUDV2_CLASSES)


@pytest.fixture(scope='module')
def sslfusion_ckpt(tmp_path_factory):
    """Small SSLFusion as built."""
    path = str(tmp_path_factory.mktemp('ckpt') / 'sslfusion_r18.pth')
    return write_checkpoint(SSLFUSION_CFG, path, 'mmdet3d', ('Pedestrian', 'Cyclist', 'Car'))


@pytest.fixture(scope='module')
def gemini_mvxnet_ckpt(tmp_path_factory):
    """GeminiFusion's MVX-Net drop-in (stock widths) as built."""
    path = str(tmp_path_factory.mktemp('ckpt') / 'mvxnet_gemini.pth')
    return write_checkpoint(GEMINI_MVXNET_CFG, path, 'mmdet3d',
                            ('Pedestrian', 'Cyclist', 'Car'))


@pytest.fixture(scope='module')
def llvip_infos(tmp_path_factory):
    """The LLVIP sample converted: ``{'train': json, 'test': json}``."""
    from mmfusion.converters.llvip import create_llvip_infos
    return create_llvip_infos(LLVIP, str(tmp_path_factory.mktemp('llvip_infos')))


def paired_cfg_options(ann_file):
    """``--cfg-options`` pointing a paired sample config's every split at ``ann_file``."""
    options = {f'{split}_dataloader.dataset.ann_file': ann_file
               for split in ('train', 'val', 'test')}
    options.update({'val_evaluator.ann_file': ann_file, 'test_evaluator.ann_file': ann_file})
    return options


def changed_fraction(drawn, original, threshold=60):
    """Fraction of pixels whose largest channel difference exceeds ``threshold``."""
    import numpy as np
    diff = np.abs(drawn.astype(int) - original.astype(int)).max(-1)
    return float((diff > threshold).mean())
