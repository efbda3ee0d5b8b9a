"""Run an RGB + infrared detector on one registered pair and draw its boxes on both images.

For the paired mmdet detectors of mmfusion (Fusion-Mamba, DAMF): the pair goes through the
config's own test pipeline (without annotation loading) and ``model.test_step``; the predicted
boxes (in original-image pixels) are drawn by mmdet's ``DetLocalVisualizer`` on the visible and
on the infrared image, so both modalities can be inspected.

Outputs in ``--out-dir``: ``<stem>_rgb.jpg`` and ``<stem>_ir.jpg`` (boxes with class and score
drawn, score >= ``--score-thr``) and ``<stem>_pred.json`` (all predicted boxes: ``bboxes``
[x1, y1, x2, y2] in pixels of the original frame, ``scores``, ``labels``, ``classes``).
``<stem>`` is the visible file's name without extension.

Example::

    python tools/demo/paired_det_demo.py \\
        projects/FusionMamba/configs/fusion-mamba_yolox-l_1xb8-200e_llvip.py CKPT.pth \\
        --rgb data/LLVIP/visible/test/190001.jpg --ir data/LLVIP/infrared/test/190001.jpg \\
        --out-dir work_dirs/demo --score-thr 0.3
"""
import argparse
import json
import os
import os.path as osp
import sys

import mmcv
import torch
from mmdet.registry import MODELS, VISUALIZERS
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config of a paired detector (mmdet scope)')
    parser.add_argument('checkpoint', help='checkpoint file (runner checkpoint or state dict)')
    parser.add_argument('--rgb', required=True, help='visible image')
    parser.add_argument('--ir', required=True, help='infrared image registered with --rgb')
    parser.add_argument('--out-dir', required=True, help='folder for the drawn images')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='smallest score of a drawn box (default 0.3)')
    parser.add_argument('--device', default='cpu', help="torch device, e.g. 'cpu', 'cuda:0'")
    return parser.parse_args(argv)


def build_detector(config, checkpoint, device='cpu'):
    """Model from ``config`` with ``checkpoint`` loaded, in eval mode.

    Returns:
        tuple: ``(model, cfg, classes)``; ``classes`` from the checkpoint's ``dataset_meta``
        when it has one, else from the config's test dataset ``metainfo``.
    """
    cfg = Config.fromfile(config)  # imports the config's custom_imports
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    ckpt = load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    meta = (ckpt.get('meta') or {}).get('dataset_meta') if isinstance(ckpt, dict) else None
    classes = (meta or cfg.test_dataloader.dataset.get('metainfo', {})).get('classes')
    if classes is None:
        raise ValueError(f'{checkpoint}: no dataset_meta, and {config} names no classes in '
                         'test_dataloader.dataset.metainfo')
    model.dataset_meta = dict(classes=tuple(classes))
    return model.to(device).eval(), cfg, tuple(classes)


def predict_pair(model, cfg, rgb, ir):
    """Detections of one pair: a ``DetDataSample`` with ``pred_instances`` in frame pixels."""
    steps = [t for t in cfg.test_dataloader.dataset.pipeline if t['type'] != 'LoadAnnotations']
    if not steps or steps[0]['type'] != 'LoadPairedImageFromFile':
        raise ValueError('the config\'s test pipeline must start with LoadPairedImageFromFile '
                         f'(got {[t["type"] for t in steps][:1]}); is it a paired detector?')
    data = Compose(steps)(dict(img_path=rgb, img_ir_path=ir, img_id=0))
    with torch.no_grad():
        return model.test_step(pseudo_collate([data]))[0]


def draw_both(result, classes, rgb, ir, out_dir, score_thr):
    """Draw ``result`` on both images; return the paths written (rgb, ir, json)."""
    os.makedirs(out_dir, exist_ok=True)
    stem = osp.splitext(osp.basename(rgb))[0]
    visualizer = VISUALIZERS.build(dict(
        type='DetLocalVisualizer', name=f'paired_det_demo_{id(result)}'))
    visualizer.dataset_meta = dict(classes=classes)
    paths = []
    for tag, path in (('rgb', rgb), ('ir', ir)):
        out_file = osp.join(out_dir, f'{stem}_{tag}.jpg')
        image = mmcv.imread(path, channel_order='rgb')
        visualizer.add_datasample(f'{stem}_{tag}', image, result, draw_gt=False, show=False,
                                  pred_score_thr=score_thr, out_file=out_file)
        paths.append(out_file)
    pred = result.pred_instances
    out_json = osp.join(out_dir, f'{stem}_pred.json')
    with open(out_json, 'w') as f:
        json.dump(dict(rgb=rgb, ir=ir, classes=list(classes),
                       bboxes=pred.bboxes.cpu().tolist(), scores=pred.scores.cpu().tolist(),
                       labels=pred.labels.cpu().tolist()), f)
    return paths + [out_json]


def main(argv=None):
    args = parse_args(argv)
    for path in (args.rgb, args.ir):
        if not osp.isfile(path):
            print(f'paired_det_demo.py: error: image file {path} not found', file=sys.stderr)
            return 2
    model, cfg, classes = build_detector(args.config, args.checkpoint, args.device)
    result = predict_pair(model, cfg, args.rgb, args.ir)
    paths = draw_both(result, classes, args.rgb, args.ir, args.out_dir, args.score_thr)
    kept = int((result.pred_instances.scores >= args.score_thr).sum())
    print(f'{kept} box(es) with score >= {args.score_thr} of '
          f'{len(result.pred_instances)} predicted; wrote ' + ', '.join(paths))
    return 0


if __name__ == '__main__':
    sys.exit(main())
