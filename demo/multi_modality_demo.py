"""LiDAR + camera 3D detection on one frame, with mmdet3d's ``MultiModalityDet3DInferencer``.

For SSLFusion, GeminiFusion's MVX-Net drop-in and any mmdet3d LiDAR + camera config. The
stock mmdet3d demo (``demo/multi_modality_demo.py`` of mmdet3d, which also runs on these
configs) needs an info file holding exactly the frame; this one takes any info file (e.g. the
``kitti_infos_val.pkl`` of ``tools/create_data.py kitti``), picks the frame whose image matches
``IMG``, and draws its ground truth next to the predictions.

Writes to ``--out-dir``:

- ``vis/<image name>``: the camera image with the GT boxes projected (green), below it with the
  predictions scoring above ``--pred-score-thr`` (red, class and score), and to the right a
  bird's-eye view of the points with both (drawn by ``CameraViewDet3DVisualizer``; no open3d);
- ``preds/<point cloud name>.json``: every predicted box (``bboxes_3d`` [x, y, z, dx, dy, dz,
  yaw] in LiDAR metres/radians, ``scores_3d``, ``labels_3d``), as the stock inferencer writes.

Example::

    # CONFIG, CHECKPOINT: e.g. projects/SSLFusion/configs/sslfusion_r18-fpn_voxel-rcnn_1xb2-
    # overfit_kitti-sample-3d-3class.py, work_dirs/sslfusion_kitti_sample_overfit/epoch_15.pth
    python demo/multi_modality_demo.py CONFIG CHECKPOINT \\
        work_dirs/demo_kitti/data/training/velodyne_reduced/000001.bin \\
        work_dirs/demo_kitti/data/training/image_2/000001.png \\
        work_dirs/demo_kitti/data/kitti_infos_trainval.pkl --out-dir outputs --device cpu
"""
import argparse
import os
import os.path as osp
import sys
import tempfile

import mmcv
import mmengine
import numpy as np
import torch
from mmdet3d.apis import MultiModalityDet3DInferencer
from mmdet3d.structures import Box3DMode, CameraInstance3DBoxes
from mmengine.structures import InstanceData


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config of a LiDAR + camera detector (mmdet3d scope)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('pcd', help='point cloud file (.bin, float32 as the config loads it)')
    parser.add_argument('img', help='camera image of the frame')
    parser.add_argument('infos', help='mmdet3d info file (.pkl) holding the frame')
    parser.add_argument('--cam-type', default='CAM2', help='camera key in the infos (CAM2)')
    parser.add_argument('--out-dir', default='outputs', help='output folder (default outputs)')
    parser.add_argument('--pred-score-thr', type=float, default=0.3,
                        help='smallest score of a drawn box (default 0.3)')
    parser.add_argument('--device', default='cpu', help="torch device, e.g. 'cpu', 'cuda:0'")
    return parser.parse_args(argv)


def frame_info(infos_path, img_path, cam_type):
    """The info file's metainfo and the entry whose ``cam_type`` image is named like ``img_path``.

    Raises:
        ValueError: If no entry matches.
    """
    infos = mmengine.load(infos_path)
    name = osp.basename(img_path)
    for info in infos['data_list']:
        if osp.basename(info['images'].get(cam_type, {}).get('img_path', '')) == name:
            return infos.get('metainfo', {}), info
    raise ValueError(f'{infos_path}: no frame with {cam_type} image {name}')


def gt_instances(info, cam_type, categories, classes):
    """GT of an info entry as ``InstanceData`` (LiDAR boxes, labels indexing ``classes``).

    Args:
        info (dict): An entry of the info file's ``data_list``.
        cam_type (str): Camera key of ``info['images']``.
        categories (dict): Class name -> label of the info file (its ``metainfo``).
        classes (Sequence[str]): The model's classes; other objects are left out.

    Returns:
        InstanceData | None: None if the frame has no object of ``classes``.
    """
    names = {label: name for name, label in categories.items()}
    instances, labels = [], []
    for inst in info.get('instances', []):
        name = names.get(inst.get('bbox_label_3d', -1))
        if name in classes:
            instances.append(inst)
            labels.append(list(classes).index(name))
    if not instances:
        return None
    lidar2cam = np.asarray(info['images'][cam_type]['lidar2cam'], dtype=np.float32)
    boxes = CameraInstance3DBoxes(np.array([i['bbox_3d'] for i in instances], np.float32))
    boxes = boxes.convert_to(Box3DMode.LIDAR, np.linalg.inv(lidar2cam))
    return InstanceData(bboxes_3d=boxes, labels_3d=torch.tensor(labels, dtype=torch.long))


def main(argv=None):
    args = parse_args(argv)
    for path in (args.config, args.checkpoint, args.pcd, args.img, args.infos):
        if not osp.isfile(path):
            print(f'multi_modality_demo.py: error: file {path} not found', file=sys.stderr)
            return 2
    try:
        metainfo, info = frame_info(args.infos, args.img, args.cam_type)
    except ValueError as err:
        print(f'multi_modality_demo.py: error: {err}', file=sys.stderr)
        return 2
    inferencer = MultiModalityDet3DInferencer(args.config, args.checkpoint, device=args.device)
    inferencer.show_progress = False
    with tempfile.TemporaryDirectory() as tmp:
        one_frame = osp.join(tmp, 'frame_info.pkl')  # the stock inferencer wants one frame
        mmengine.dump(dict(metainfo=metainfo, data_list=[info]), one_frame)
        result = inferencer(dict(points=args.pcd, img=args.img, infos=one_frame),
                            return_datasamples=True, cam_type=args.cam_type)
    sample = result['predictions'][0]
    gt = gt_instances(info, args.cam_type, metainfo.get('categories', {}),
                      inferencer.model.dataset_meta['classes'])
    if gt is not None:
        sample.gt_instances_3d = gt
    points = np.fromfile(args.pcd, dtype=np.float32).reshape(-1, inferencer.load_dim)
    img = mmcv.imread(args.img, channel_order='rgb')
    out_file = osp.join(args.out_dir, 'vis', osp.basename(args.img))
    os.makedirs(osp.dirname(out_file), exist_ok=True)
    inferencer.visualizer.add_datasample(
        osp.basename(args.img), dict(points=points, img=img),
        sample, draw_gt=True, draw_pred=True, vis_task='multi-modality_det',
        pred_score_thr=args.pred_score_thr, out_file=out_file)
    pred = inferencer.pred2dict(sample, args.out_dir)
    kept = int((np.asarray(pred['scores_3d']) > args.pred_score_thr).sum())
    print(f'{kept} box(es) with score > {args.pred_score_thr} of {len(pred["scores_3d"])} '
          f'predicted, {0 if gt is None else len(gt)} GT box(es)')
    print(f'picture: {out_file}')
    print(f'predictions: {osp.join(args.out_dir, "preds")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
