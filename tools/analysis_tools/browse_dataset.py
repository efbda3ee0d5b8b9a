"""Draw a dataset's ground truth after its pipeline, on every modality (any mmfusion config).

The stock ``browse_dataset.py`` of mmdet, mmdet3d and mmseg, for the two-modality data of
mmfusion, with their flags: ``CONFIG [--output-dir DIR] [--not-show] [--show-interval S]
[--task T] [--aug] [--phase train|val|test] [--cfg-options k=v]``.

What is drawn, by the config's host (``default_scope``):

- mmdet (visible + infrared pairs, ``PairedCocoDataset``): the GT boxes on the visible and the
  infrared image as the model sees them (after resize, flip, mosaic, ...), side by side;
- mmseg (RGB + depth, ``NYUDv2Dataset``): the GT class map on the RGB image, the depth map
  colour-mapped, and a legend of the classes present;
- mmdet3d (LiDAR + camera: KITTI, DENSE): the GT boxes projected on the camera image and in a
  bird's-eye view of the points (``--task multi-modality_det``, the default for a pipeline
  loading points and images; ``lidar_det`` draws the bird's-eye view alone).

Pipeline (as mmdet3d's tool): without ``--aug``, the ``--phase`` dataset's own pipeline, its
random steps left out: the test pipeline with the annotation loader of the training pipeline
placed right after the data loaders (so the labels go through the same resizing as the images)
and the training pipeline's packer; with ``--aug``, the training pipeline (for LiDAR data the
camera view then shows the un-augmented image: the 3D boxes are drawn as augmented). Pictures:
``<output-dir>/<image file name>``.
"""
import argparse
import copy
import os.path as osp
import sys

import mmcv
import numpy as np
from mmengine.config import Config, DictAction
from mmengine.fileio import get
from mmengine.registry import DATASETS, VISUALIZERS, init_default_scope
from mmengine.utils import ProgressBar, mkdir_or_exist

from mmfusion.utils.visualization_hooks import (default_vis_task, host_of, select_visualizer,
                                                test_pipeline_types)

ANNOTATION_LOADERS = ('LoadAnnotations', 'LoadAnnotations3D')
PACKERS = ('Pack3DDetInputs', 'PackPairedDetInputs', 'PackRGBDSegInputs', 'PackDetInputs',
           'PackSegInputs')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file path')
    parser.add_argument('--output-dir', default=None, help='folder for the pictures')
    parser.add_argument('--not-show', default=False, action='store_true',
                        help='do not show the pictures in a window')
    parser.add_argument('--show-interval', type=float, default=2,
                        help='seconds each picture is shown')
    parser.add_argument('--task', choices=['lidar_det', 'multi-modality_det'],
                        help='mmdet3d visualization task (default: from the pipeline)')
    parser.add_argument('--aug', action='store_true', help='use the training pipeline')
    parser.add_argument('--phase', default='train', choices=['train', 'val', 'test'],
                        help='which dataloader\'s dataset to browse (default train)')
    parser.add_argument('--max-samples', type=int, default=None,
                        help='draw at most this many samples')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config')
    return parser.parse_args(argv)


def _levels(dataset_cfg) -> list:
    """Dataset configs from the outermost wrapper (RepeatDataset, MultiImageMixDataset, ...)
    to the dataset itself."""
    levels = [dataset_cfg]
    while 'dataset' in levels[-1]:
        levels.append(levels[-1]['dataset'])
    return levels


def _name(t):
    return str(t.get('type', '')).split('.')[-1]


def show_dataset_cfg(cfg, phase: str, aug: bool):
    """The dataset config to browse (see the module docstring).

    Returns:
        ConfigDict: The training dataset as configured (``aug``), else the ``phase``
        dataset, unwrapped, with the test pipeline plus the training annotation loader and
        packer, in training mode (annotations loaded).
    """
    if aug:
        return copy.deepcopy(cfg.train_dataloader.dataset)
    train = [t for level in reversed(_levels(cfg.train_dataloader.dataset))
             for t in level.get('pipeline', [])]
    base = copy.deepcopy(_levels(cfg[f'{phase}_dataloader'].dataset)[-1])
    test = [t for t in _levels(cfg.test_dataloader.dataset)[-1]['pipeline']
            if _name(t) not in ANNOTATION_LOADERS]
    loaders = [t for t in train if _name(t) in ANNOTATION_LOADERS][:1]
    packers = [t for t in train if _name(t) in PACKERS][-1:]
    last_loader = max(i for i, t in enumerate(test) if _name(t).startswith('Load'))
    pipeline = test[:last_loader + 1] + loaders + test[last_loader + 1:]
    if packers:
        pipeline = [t for t in pipeline if _name(t) not in PACKERS] + packers
    base['pipeline'] = copy.deepcopy(pipeline)
    base['test_mode'] = False  # annotations loaded as for training
    return base


def chw_bgr_to_rgb(tensor) -> np.ndarray:
    """(3, H, W) BGR tensor -> (H, W, 3) uint8 RGB array."""
    return np.ascontiguousarray(tensor.numpy().transpose(1, 2, 0)[..., ::-1]).astype(np.uint8)


def draw(visualizer, host, item, vis_task, out_file, show, wait_time):
    """Draw one packed sample (its ground truth) with the host's visualizer."""
    inputs, sample = item['inputs'], item['data_samples']
    name = osp.basename(sample.img_path if 'img_path' in sample else sample.lidar_path)
    if host == 'mmdet':
        boxes = sample.gt_instances.get('bboxes', None)
        if boxes is not None and hasattr(boxes, 'tensor'):  # mmdet box type, as mmdet's tool
            sample.gt_instances.bboxes = boxes.tensor
        image = dict(img=chw_bgr_to_rgb(inputs['img']), img_ir=chw_bgr_to_rgb(inputs['img_ir']))
        visualizer.add_datasample(name, image, sample, draw_pred=False, show=show,
                                  wait_time=wait_time, out_file=out_file)
    elif host == 'mmseg':
        depth = inputs['img_depth'][0].numpy()  # every channel holds the metres
        image = dict(img=chw_bgr_to_rgb(inputs['img']), depth=depth)
        visualizer.add_datasample(name, image, sample, draw_pred=False, show=show,
                                  wait_time=wait_time, out_file=out_file)
    else:
        data_input = dict(points=inputs['points'])
        if vis_task == 'multi-modality_det':
            data_input['img'] = mmcv.imfrombytes(get(sample.img_path), channel_order='rgb')
        visualizer.add_datasample(name, data_input, sample, draw_pred=False, show=show,
                                  wait_time=wait_time, out_file=out_file, vis_task=vis_task)


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.config):
        print(f'browse_dataset.py: error: config file {args.config} not found', file=sys.stderr)
        return 2
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    try:
        host = host_of(cfg)
    except ValueError as err:
        print(f'browse_dataset.py: error: {args.config}: {err}', file=sys.stderr)
        return 2
    init_default_scope(host)
    types = test_pipeline_types(cfg)
    vis_task = args.task or default_vis_task(types) if host == 'mmdet3d' else None
    if args.task and host != 'mmdet3d':
        print(f'browse_dataset.py: error: --task is for mmdet3d configs ({host} config)',
              file=sys.stderr)
        return 2
    dataset = DATASETS.build(show_dataset_cfg(cfg, args.phase, args.aug))
    select_visualizer(cfg, types, host, vis_task)
    cfg.visualizer.name = 'browse_dataset'
    visualizer = VISUALIZERS.build(cfg.visualizer)
    visualizer.dataset_meta = dataset.metainfo
    if args.output_dir:
        mkdir_or_exist(args.output_dir)
    count = len(dataset) if args.max_samples is None else min(args.max_samples, len(dataset))
    progress = ProgressBar(count)
    written = []
    for i in range(count):
        item = dataset[i]
        sample = item['data_samples']
        name = osp.basename(sample.img_path if 'img_path' in sample else sample.lidar_path)
        out_file = None
        if args.output_dir:
            out_file = osp.join(args.output_dir, osp.splitext(name)[0] + '.png')
            written.append(out_file)
        draw(visualizer, host, item, vis_task, out_file, not args.not_show, args.show_interval)
        progress.update()
    print(f'\n{len(written)} picture(s) in {args.output_dir}' if written else '')
    return 0


if __name__ == '__main__':
    sys.exit(main())
