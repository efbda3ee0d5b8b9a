"""CameraViewDet3DVisualizer keeps the camera image when boxes lie behind the camera."""
import mmcv
import mmengine
import numpy as np
import pytest
import torch

import mmfusion.det3d  # noqa: F401

pytestmark = pytest.mark.default_scope('mmdet3d')


@pytest.fixture(scope='module')
def frame(kitti_infos_root):
    info = mmengine.load(f'{kitti_infos_root}/kitti_infos_trainval.pkl')['data_list'][1]
    img = mmcv.imread(f'{kitti_infos_root}/training/image_2/000001.png', channel_order='rgb')
    return img, dict(lidar2img=np.array(info['images']['CAM2']['lidar2img']))


def draw(visualizer, img, meta, boxes, colors='royalblue'):
    from mmdet3d.structures import LiDARInstance3DBoxes
    visualizer.set_image(img)
    visualizer.draw_proj_bboxes_3d(LiDARInstance3DBoxes(torch.tensor(boxes)), meta,
                                   edge_colors=colors, img_size=img.shape[:2][::-1])
    return visualizer.get_image()


def test_box_behind_camera_is_skipped_and_front_box_drawn(frame):
    from mmdet3d.registry import VISUALIZERS
    img, meta = frame
    vis = VISUALIZERS.build(dict(type='CameraViewDet3DVisualizer', name='camview-test'))
    front = [15., 0., -1.6, 3.9, 1.6, 1.5, 0.]
    behind = [-5., 0., -1.6, 3.9, 1.6, 1.5, 0.]
    alone = draw(vis, img, meta, [front])
    with_behind = draw(vis, img, meta, [front, behind], colors=['red', 'blue'])
    # the picture is the front box on the camera image, whatever lies behind the camera
    assert abs(with_behind.astype(float).mean() - img.mean()) < 5
    assert (alone != img).any()
    # the per-box colour list was filtered with the boxes: the front box is drawn in red
    red_only = draw(vis, img, meta, [front], colors=['red'])
    np.testing.assert_array_equal(with_behind, red_only)
    # only boxes behind: the image is untouched
    np.testing.assert_array_equal(draw(vis, img, meta, [behind]), img)
