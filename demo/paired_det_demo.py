"""RGB + infrared detection on registered pairs, with mmfusion's ``PairedDetInferencer``.

For the paired mmdet detectors of mmfusion (Fusion-Mamba, DAMF). ``RGB`` and ``IR`` are two
image files of one pair, or two folders whose images are paired by file name.

Writes to ``--out-dir`` (as mmdet's ``demo/image_demo.py``):

- ``vis/<visible file name>``: the predictions scoring above ``--pred-score-thr`` drawn on the
  visible (left) and the infrared (right) image, class and score on each box;
- ``preds/<visible file stem>.json``: every predicted box (``bboxes`` [x1, y1, x2, y2] in pixels
  of the images, ``scores``, ``labels``) unless ``--no-save-pred``.

Example::

    python demo/paired_det_demo.py \\
        projects/FusionMamba/configs/fusion-mamba_yolox-l_1xb8-200e_llvip.py CKPT.pth \\
        data/LLVIP/visible/test/190001.jpg data/LLVIP/infrared/test/190001.jpg \\
        --out-dir outputs --pred-score-thr 0.3 --device cpu
"""
import argparse
import os.path as osp
import sys

import numpy as np

from mmfusion.apis.paired_det_inferencer import PairedDetInferencer


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config of a paired detector (mmdet scope)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('rgb', help='visible image, or a folder of them')
    parser.add_argument('ir', help='infrared image registered with RGB, or a folder of them')
    parser.add_argument('--out-dir', default='outputs', help='output folder (default outputs)')
    parser.add_argument('--pred-score-thr', type=float, default=0.3,
                        help='smallest score of a drawn box (default 0.3)')
    parser.add_argument('--device', default='cpu', help="torch device, e.g. 'cpu', 'cuda:0'")
    parser.add_argument('--no-save-pred', action='store_true', help='do not write the json')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for path in (args.config, args.checkpoint, args.rgb, args.ir):
        if not osp.exists(path):
            print(f'paired_det_demo.py: error: {path} not found', file=sys.stderr)
            return 2
    if osp.isdir(args.rgb) != osp.isdir(args.ir):
        print('paired_det_demo.py: error: RGB and IR must both be files or both folders',
              file=sys.stderr)
        return 2
    inferencer = PairedDetInferencer(args.config, args.checkpoint, device=args.device,
                                     show_progress=False)
    try:
        result = inferencer(dict(img=args.rgb, img_ir=args.ir), out_dir=args.out_dir,
                            pred_score_thr=args.pred_score_thr, no_save_pred=args.no_save_pred)
    except ValueError as err:
        print(f'paired_det_demo.py: error: {err}', file=sys.stderr)
        return 2
    for pred in result['predictions']:
        kept = int((np.asarray(pred['scores']) > args.pred_score_thr).sum())
        print(f'{kept} box(es) with score > {args.pred_score_thr} of {len(pred["scores"])} '
              'predicted')
    print(f'pictures: {osp.join(args.out_dir, "vis")}')
    if not args.no_save_pred:
        print(f'predictions: {osp.join(args.out_dir, "preds")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
