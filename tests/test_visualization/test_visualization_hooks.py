"""configure_visualization gives each host's hook its own keys; the guard keeps a drawing error
from stopping the test loop; visualizers draw without open3d."""
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from mmfusion.utils.visualization_hooks import GuardedVisualizationHook, configure_visualization
from tests.inference_fixtures import FUSION_MAMBA_CFG, GEMINI_SEG_CFG, SSLFUSION_CFG


def hook_of(cfg):
    hook = cfg.default_hooks.visualization
    assert hook.type == 'GuardedVisualizationHook'
    return hook.hook


def test_mmdet3d_keys_task_and_visualizer():
    cfg = Config.fromfile(SSLFUSION_CFG)
    configure_visualization(cfg, 'pictures', score_thr=0.3)
    hook = hook_of(cfg)
    assert hook.type == 'Det3DVisualizationHook' and hook.draw and hook.draw_gt
    assert hook.vis_task == 'multi-modality_det' and hook.test_out_dir == 'pictures'
    assert hook.score_thr == 0.3 and cfg.visualizer.type == 'CameraViewDet3DVisualizer'


def test_mmdet_keys_and_paired_visualizer():
    cfg = Config.fromfile(FUSION_MAMBA_CFG)
    configure_visualization(cfg, 'pictures', score_thr=0.5)
    hook = hook_of(cfg)
    assert hook.type == 'DetVisualizationHook' and 'vis_task' not in hook
    assert hook.test_out_dir == 'pictures' and hook.score_thr == 0.5
    assert cfg.visualizer.type == 'PairedDetLocalVisualizer'
    with pytest.raises(ValueError, match='mmdet3d option'):
        configure_visualization(Config.fromfile(FUSION_MAMBA_CFG), 'p', task='lidar_det')


def test_mmseg_keys_and_rgbd_visualizer():
    cfg = Config.fromfile(GEMINI_SEG_CFG)
    configure_visualization(cfg, 'pictures')
    hook = hook_of(cfg)
    assert hook.type == 'SegOutDirVisualizationHook' and hook.test_out_dir == 'pictures'
    assert 'score_thr' not in hook and 'vis_task' not in hook
    assert cfg.visualizer.type == 'RGBDSegLocalVisualizer'
    with pytest.raises(ValueError, match='detection'):
        configure_visualization(Config.fromfile(GEMINI_SEG_CFG), 'p', score_thr=0.3)


@HOOKS.register_module()
class _FailingDrawHook(Hook):
    def __init__(self):
        self.calls = 0

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.calls += 1
        raise RuntimeError('cannot draw')


def test_guard_logs_the_error_and_stops_drawing():
    guard = GuardedVisualizationHook(dict(type='_FailingDrawHook'))
    for i in range(3):
        guard.after_test_iter(None, i, None, [])  # never raises
    assert guard.hook.calls == 1 and 'cannot draw' in guard.error


@pytest.mark.default_scope('mmdet3d')
def test_bev_and_camera_without_open3d(monkeypatch, kitti_infos_root):
    import mmcv
    import mmengine
    import torch
    from mmdet3d.registry import VISUALIZERS
    from mmdet3d.structures import Det3DDataSample, LiDARInstance3DBoxes
    from mmengine.structures import InstanceData

    import mmfusion.det3d  # noqa: F401
    from mmfusion.visualization import camera_view_visualizer
    monkeypatch.setattr(camera_view_visualizer, 'HAS_OPEN3D', False)
    info = mmengine.load(f'{kitti_infos_root}/kitti_infos_trainval.pkl')['data_list'][1]
    img = mmcv.imread(f'{kitti_infos_root}/training/image_2/000001.png', channel_order='rgb')
    points = np.fromfile(f'{kitti_infos_root}/training/velodyne_reduced/000001.bin',
                         np.float32).reshape(-1, 4)
    sample = Det3DDataSample(metainfo=dict(lidar2img=np.array(info['images']['CAM2']['lidar2img'])))
    box = LiDARInstance3DBoxes(torch.tensor([[15., 0., -1.6, 3.9, 1.6, 1.5, 0.]]))
    sample.gt_instances_3d = InstanceData(bboxes_3d=box, labels_3d=torch.tensor([2]))
    sample.pred_instances_3d = InstanceData(
        bboxes_3d=LiDARInstance3DBoxes(torch.tensor([[15., 0.5, -1.6, 3.9, 1.6, 1.5, 0.1],
                                                     [30., 5., -1.6, 3.9, 1.6, 1.5, 0.]])),
        labels_3d=torch.tensor([2, 2]), scores_3d=torch.tensor([0.9, 0.1]))
    vis = VISUALIZERS.build(dict(type='CameraViewDet3DVisualizer', name='bev-test'))
    vis.dataset_meta = dict(classes=('Pedestrian', 'Cyclist', 'Car'))
    drawn = vis.draw_frame(dict(points=points, img=img), sample, pred_score_thr=0.3)
    h, w = img.shape[:2]
    assert drawn.shape[0] == 2 * h and drawn.shape[1] > w
    assert (drawn[:h, :w] != img).any() and (drawn[h:, :w] != img).any()
    bev = drawn[:, w:]
    green = (bev[..., 1] > 150) & (bev[..., 0] < 80) & (bev[..., 2] < 80)
    red = (bev[..., 0] > 200) & (bev[..., 1] < 80) & (bev[..., 2] < 80)
    assert green.sum() > 20 and red.sum() > 20
    # the 0.1 box is below the threshold: only one predicted box, near the GT one
    ys = np.nonzero(red[50:])[0] + 50  # below the legend
    assert ys.min() > bev.shape[0] * 0.7  # 15-16 m ahead of 70.4 m: the lowest quarter
