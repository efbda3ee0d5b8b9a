"""RGB + depth semantic segmentation of one frame, with mmfusion's ``RGBDSegInferencer``.

For GeminiFusion's segmentation configs (and any mmseg config whose test pipeline loads
``LoadImageFromFile`` + ``LoadDepthFromFile``). ``DEPTH`` is the 16-bit depth PNG in the
dataset's units (metres x ``depth_scale`` of the config; NYUDv2 as converted: 5000).

Writes to ``--out-dir`` (as mmseg's ``demo/image_demo_with_inferencer.py``):

- ``vis/<image name>``: the ensemble prediction blended on the image, the colour-mapped depth
  and a legend of the classes present; with ``--streams`` also each stream's prediction;
- ``pred/<n>_pred.png``: the ensemble class map (uint8 class indices).

There is no score threshold: segmentation assigns every pixel its arg-max class.

Example::

    # CONFIG: e.g. projects/GeminiFusion/configs/geminifusion_mit-b0-tiny_1xb2-300it_nyudv2-
    # sample-rgbd-240x320.py
    python demo/rgbd_seg_demo.py CONFIG CHECKPOINT \\
        tests/data/nyudv2/rgb/000433.png tests/data/nyudv2/depth/000433.png \\
        --out-dir outputs --device cpu --streams
"""
import argparse
import os.path as osp
import sys

import numpy as np

from mmfusion.apis.rgbd_seg_inferencer import RGBDSegInferencer


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config of an RGB + depth segmentor (mmseg scope)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('img', help='RGB image')
    parser.add_argument('depth', help='16-bit depth PNG aligned with IMG')
    parser.add_argument('--out-dir', default='outputs', help='output folder (default outputs)')
    parser.add_argument('--device', default='cpu', help="torch device, e.g. 'cpu', 'cuda:0'")
    parser.add_argument('--opacity', type=float, default=0.6,
                        help='opacity of the class colours on the image (default 0.6)')
    parser.add_argument('--streams', action='store_true',
                        help="also draw and report each stream's prediction")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for path in (args.config, args.checkpoint, args.img, args.depth):
        if not osp.isfile(path):
            print(f'rgbd_seg_demo.py: error: file {path} not found', file=sys.stderr)
            return 2
    inferencer = RGBDSegInferencer(args.config, args.checkpoint, device=args.device)
    inferencer.show_progress = False
    try:
        result = inferencer(dict(img=args.img, depth=args.depth), out_dir=args.out_dir,
                            opacity=args.opacity, return_streams=args.streams)
    except ValueError as err:
        print(f'rgbd_seg_demo.py: error: {err}', file=sys.stderr)
        return 2
    pred = result['predictions']
    maps = pred if isinstance(pred, dict) else dict(sem_seg=pred)
    classes = inferencer.model.dataset_meta['classes']
    for key, sem_seg in maps.items():
        labels, counts = np.unique(sem_seg, return_counts=True)
        top = ', '.join(f'{classes[lb]} {c / sem_seg.size:.0%}'
                        for lb, c in sorted(zip(labels, counts), key=lambda x: -x[1])[:4])
        print(f'{key}: {top}')
    print(f'picture: {osp.join(args.out_dir, "vis", osp.basename(args.img))}')
    print(f'class map: {osp.join(args.out_dir, "pred")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
