"""DAMF: -log P_normal of the fused CLS token on degraded inputs, per stage-2 checkpoint.

Paper: "Distribution-Aligned Multimodal Fusion for Robust Object Detection" (DAMF), CVPR 2026:
stage 2 trains the fusion module so that the fused CLS token of a degraded RGB image + its
infrared partner is likely under P_normal, the Gaussian mixture of the frozen encoder's CLS
features of normal RGB images. This script measures that quantity on fixed degraded test
images for a series of checkpoints (e.g. one per epoch), so the alignment can be followed over
training, seen and unseen degradations apart.

For every degradation kind (at one severity, with a fixed seed; ``clean`` = no degradation) and
every image of the chosen dataset(s), it records

- ``rgb_only``: ``-log P_normal(CLS of the frozen RGB encoder on the degraded image)``, the
  stage-0 detector's own feature (recorded per state; the same for every checkpoint of a
  stage-2 run, whose encoder is frozen);
- ``fused``: ``-log P_normal(fused CLS)`` for the initial state (``load_from`` of the config
  with a fresh fusion module, which starts as the identity on the RGB tokens) and for each
  checkpoint.

P_normal is the model's ``align_loss`` prior (the config's ``gmm_file``, or ``--gmm-file``).
Degradations: :class:`mmfusion.datasets.transforms.RGBDegradation`, inserted right after the
pair is loaded in the config's test pipeline; the infrared image is never degraded.
``seen`` lists the kinds of the config's training ``RandomRGBDegradation``/``RGBDegradation``.

Outputs: ``--out`` (JSON: per kind, per image and per state) and, with ``--plot``, a PNG of the
mean over images vs. training epoch (one line per kind; dashed: RGB only).

Example (the documented run, docs/runs/damf_llvip_sample/)::

    python tools/analysis_tools/damf_alignment_nll.py \\
        projects/DAMF/configs/damf-stage2_vit-tiny-detr_1xb2-40e_llvip-sample.py \\
        --checkpoints work_dirs/damf_llvip_sample/stage2/epoch_*.pth \\
        --ann-files data/llvip_sample_infos/llvip_infos_test.json \\
                    data/llvip_sample_infos/llvip_infos_train.json \\
        --kinds clean overexposure underexposure night fog blur --severity 3 \\
        --out docs/runs/damf_llvip_sample/nll.json --plot docs/runs/damf_llvip_sample/nll.png
"""
import argparse
import copy
import json
import os
import os.path as osp
import re
import time
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

from mmfusion.datasets.transforms.degradations import DEGRADATION_KINDS
from mmfusion.models.losses.gmm_nll_loss import GaussianMixturePrior
from mmfusion.utils.compat import load_from_local, restore_mmengine_checkpoint_loading

CLEAN = 'clean'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='DAMF stage-2 config (model, prior, test pipeline)')
    parser.add_argument('--checkpoints', nargs='*', default=[],
                        help='stage-2 checkpoints, ordered by their epoch (meta.epoch)')
    parser.add_argument('--no-initial', action='store_true',
                        help="skip the initial state (the config's load_from, fresh fusion)")
    parser.add_argument('--gmm-file', help="prior to score with (default: the model's)")
    parser.add_argument('--ann-files', nargs='*', default=None,
                        help='annotation files of the images (default: the val dataset)')
    parser.add_argument('--kinds', nargs='+', default=[CLEAN] + list(DEGRADATION_KINDS),
                        choices=[CLEAN] + list(DEGRADATION_KINDS))
    parser.add_argument('--severity', type=float, default=3)
    parser.add_argument('--seed', type=int, default=0, help='noise seed of the degradations')
    parser.add_argument('--out', required=True, help='output JSON')
    parser.add_argument('--plot', help='output PNG (mean NLL vs epoch)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def seen_kinds(cfg: Config) -> List[str]:
    """Degradation kinds of the training pipeline (``RandomRGBDegradation``/``RGBDegradation``)."""
    kinds = []
    for t in cfg.train_dataloader.dataset.get('pipeline', []):
        name = str(t.get('type', '')).split('.')[-1]
        if name == 'RandomRGBDegradation':
            kinds += [t['kinds']] if isinstance(t['kinds'], str) else list(t['kinds'])
        elif name == 'RGBDegradation':
            kinds.append(t['kind'])
    return sorted(set(kinds))


def build_datasets(cfg: Config, ann_files: Optional[List[str]], kind: str, severity: float,
                   seed: int):
    """One dataset per annotation file with the test pipeline, degraded by ``kind``."""
    from mmdet.registry import DATASETS
    base = copy.deepcopy(cfg.val_dataloader.dataset)
    pipeline = copy.deepcopy(cfg.val_dataloader.dataset.pipeline)
    if kind != CLEAN:
        pipeline.insert(1, dict(type='RGBDegradation', kind=kind, severity=severity, seed=seed))
    base.pipeline = pipeline
    base.test_mode = True
    datasets = []
    for ann_file in (ann_files or [base.ann_file]):
        ds_cfg = copy.deepcopy(base)
        ds_cfg.ann_file = ann_file
        datasets.append(DATASETS.build(ds_cfg))
    return datasets


@torch.no_grad()
def cls_features(model, datasets) -> Dict[str, torch.Tensor]:
    """(N, d) RGB-only and fused CLS features of every sample (batch size 1), and paths."""
    rgb, fused, paths = [], [], []
    for dataset in datasets:
        for i in range(len(dataset)):
            data = model.data_preprocessor(pseudo_collate([dataset[i]]), False)
            rgb.append(model.extract_cls_features(data['inputs']['img']))
            fused.append(model.extract_fused_cls_features(data['inputs']))
            paths.append(data['data_samples'][0].img_path)
    return dict(rgb=torch.cat(rgb), fused=torch.cat(fused), paths=paths)


def checkpoint_epoch(path: str) -> Optional[int]:
    """``meta.epoch`` of a checkpoint, else the number in ``epoch_<n>.pth``."""
    meta = load_from_local(path, map_location='cpu').get('meta', {})
    if 'epoch' in meta:
        return int(meta['epoch'])
    match = re.search(r'epoch_(\d+)', osp.basename(path))
    return int(match.group(1)) if match else None


def plot(record: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    epochs = [s['epoch'] for s in record['states']]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for idx, (kind, res) in enumerate(record['nll'].items()):
        color = f'C{idx}'
        tag = ' (seen)' if kind in record['seen_kinds'] else '' if kind == CLEAN else \
            ' (unseen)'
        ax.plot(epochs, res['fused_mean'], '-o', ms=3, color=color, label=f'{kind}{tag}')
        ax.plot(epochs, res['rgb_only_mean'], '--', lw=1, color=color)
    ax.set_xlabel('stage-2 epoch (0: stage-0 detector, fusion at initialisation)')
    ax.set_ylabel('mean -log P_normal(CLS)')
    ax.set_yscale('symlog', linthresh=100)
    ax.set_title('DAMF fused CLS vs P_normal (solid); RGB-only encoder (dashed)')
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    restore_mmengine_checkpoint_loading()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    from mmdet.registry import MODELS

    import mmfusion.det  # noqa: F401

    model_cfg = copy.deepcopy(cfg.model)
    if args.gmm_file:
        model_cfg.align_loss = dict(type='GMMNegLogLikelihoodLoss', gmm_file=args.gmm_file)
    if model_cfg.get('fusion') is None:
        raise ValueError(f'{args.config} has no fusion module (not a DAMF stage-2 config)')
    prior_file = model_cfg.get('align_loss', {}).get('gmm_file') if model_cfg.get(
        'align_loss') else None
    if prior_file is None:
        raise ValueError(f'{args.config}: no prior to score with; pass --gmm-file')
    prior = GaussianMixturePrior.from_file(prior_file)

    states = []
    if not args.no_initial:
        if not cfg.get('load_from'):
            raise ValueError(f'{args.config} has no load_from (the stage-0 checkpoint) for the '
                             'initial state; pass --no-initial')
        states.append(dict(epoch=0, checkpoint=cfg.load_from))
    for path in args.checkpoints:
        states.append(dict(epoch=checkpoint_epoch(path), checkpoint=path))
    states.sort(key=lambda s: (s['epoch'] is None, s['epoch']))

    datasets = {kind: build_datasets(cfg, args.ann_files, kind, args.severity, args.seed)
                for kind in args.kinds}
    nll = {kind: dict(fused=[], rgb_only=[]) for kind in args.kinds}
    paths = None
    start = time.time()
    for state in states:
        # no init_weights: the checkpoint sets every detector weight and the fusion module is
        # initialised at construction (identity on the RGB tokens)
        torch.manual_seed(0)
        model = MODELS.build(copy.deepcopy(model_cfg))
        load_checkpoint(model, state['checkpoint'], map_location='cpu', strict=False,
                        logger='silent')
        model.eval()
        for kind in args.kinds:
            feats = cls_features(model, datasets[kind])
            paths = feats['paths']
            nll[kind]['fused'].append((-prior.log_prob(feats['fused'])).tolist())
            nll[kind]['rgb_only'].append((-prior.log_prob(feats['rgb'])).tolist())
    for kind, res in nll.items():
        res['fused_mean'] = [float(np.mean(v)) for v in res['fused']]
        # the encoder is frozen in stage 2, so this is the same for every state of a run
        res['rgb_only_mean'] = [float(np.mean(v)) for v in res['rgb_only']]
    record = dict(
        config=args.config, prior=prior_file, severity=args.severity, seed=args.seed,
        seen_kinds=seen_kinds(cfg), kinds=args.kinds, images=paths, states=states, nll=nll,
        seconds=round(time.time() - start, 1),
        note='nll[kind].fused[i][j]: -log P_normal(fused CLS) of image j at states[i]; '
             'rgb_only[i][j]: of the RGB encoder alone (frozen: equal for every state)')
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(record, f, indent=1)
    if args.plot:
        plot(record, args.plot)
    for kind, res in nll.items():
        print(f'{kind:14s} rgb-only {res["rgb_only_mean"][0]:12.1f}  fused per state: '
              + ' '.join(f'{v:.1f}' for v in res['fused_mean']))
    return record


if __name__ == '__main__':
    main()
