"""Fit DAMF's normal-feature prior: a Gaussian mixture on the frozen encoder's CLS features.

Paper: "Distribution-Aligned Multimodal Fusion for Robust Object Detection" (DAMF), CVPR 2026.
Steps (the logic lives in importable modules; this script wires them):

1. build the model from CONFIG (mmdet registry; the config's ``custom_imports``) and load
   CHECKPOINT with mmengine (``strict=False``: missing/unexpected keys are logged). Any
   ``GMMNegLogLikelihoodLoss`` in the model config is built with ``gmm_file=None`` (the prior
   being fitted is not needed to extract features);
2. build the dataset of ``--split``'s dataloader (default: the train set) with the config's
   *test* pipeline (``test_dataloader.dataset.pipeline``, else ``test_pipeline``): no
   augmentation. Dataset wrappers with one inner ``dataset`` are unwrapped;
3. measure brightness and contrast of every raw RGB image (read by the test pipeline's first,
   loading, transform alone: full resolution, no padding, scaled to [0, 1]) and select the
   normal ones, stratified by brightness:
   :class:`mmfusion.datasets.normal_sample_selection.NormalSampleSelector` (definitions
   there);
4. extract their CLS features with ``model.extract_cls_features(inputs['img'])`` on the batch
   normalised by ``model.data_preprocessor``;
5. fit diagonal Gaussian mixtures for every K of ``--k-range`` and keep the lowest BIC:
   :func:`mmfusion.models.losses.fit_gmm_by_bic`;
   With ``--degradation KIND SEVERITY`` (the ``P_degraded`` ablation of the paper) the same
   selected samples are degraded by :class:`~mmfusion.datasets.transforms.RGBDegradation`
   (inserted right after the loading transform, seeded by ``--seed``) before their features
   are extracted; selection still measures the clean images, so P_normal and P_degraded are
   fitted on the same images;
6. write ``--out`` (read by ``GMMNegLogLikelihoodLoss(gmm_file=...)``): the mixture plus
   ``chosen_k``, ``bic`` ({K: BIC}), ``k_selection``, ``selection`` (statistics),
   ``selected_images``, ``config``, ``checkpoint``, ``split``, ``seed``, ``feature_dim``,
   ``degradation`` (None, or ``dict(kind=, severity=)``).

Batch size 1 is the default so a sample's features do not depend on the padding of a batch.

Example::

    python tools/fit_gmm.py configs/damf/<config>.py work_dirs/rgb_detector/epoch_50.pth \\
        --out work_dirs/damf/gmm_normal.pth --k-range 2 16 --num-samples 2000 --seed 0
    # P_degraded: the same images, over-exposed at severity 3
    python tools/fit_gmm.py configs/damf/<config>.py work_dirs/rgb_detector/epoch_50.pth \\
        --out work_dirs/damf/gmm_degraded.pth --degradation overexposure 3 --seed 0
"""
import argparse
import copy
import os.path as osp
import time
from typing import List, Optional

import numpy as np
import torch
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.dataset import pseudo_collate
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import Subset

from mmfusion.datasets.normal_sample_selection import (BRIGHTNESS_RANGE, MIN_CONTRAST,
                                                       NormalSampleSelector, image_statistics)
from mmfusion.models.losses.gmm_fitting import fit_gmm_by_bic
from mmfusion.models.losses.gmm_nll_loss import GaussianMixturePrior
from mmfusion.utils.compat import restore_mmengine_checkpoint_loading

_WRAPPERS = ('RepeatDataset', 'ClassBalancedDataset', 'MultiImageMixDataset')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Fit the DAMF Gaussian-mixture prior on CLS features of normal images')
    parser.add_argument('config', help='model config (defines the frozen detector and data)')
    parser.add_argument('checkpoint', help='checkpoint of the frozen RGB detector')
    parser.add_argument('--out', required=True, help='output .pth file of the mixture')
    parser.add_argument('--k-range', type=int, nargs=2, default=[2, 16],
                        metavar=('K_MIN', 'K_MAX'), help='component counts tried (inclusive)')
    parser.add_argument('--num-samples', type=int, default=None,
                        help='normal samples to use (stratified draw); default: all normal')
    parser.add_argument('--seed', type=int, default=0, help='seed of the draw and the fits')
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='train',
                        help="whose dataloader's dataset to read (default train)")
    parser.add_argument('--brightness-range', type=float, nargs=2, default=BRIGHTNESS_RANGE,
                        metavar=('LOW', 'HIGH'), help='normal brightness (mean luma in [0,1])')
    parser.add_argument('--min-contrast', type=float, default=MIN_CONTRAST,
                        help='normal contrast is above this (2 * std of the luma)')
    parser.add_argument('--num-bins', type=int, default=4, help='brightness strata')
    parser.add_argument('--channel-order', choices=['bgr', 'rgb'], default='bgr',
                        help="channel order of the pipeline's images (mmcv loads BGR)")
    parser.add_argument('--degradation', nargs=2, metavar=('KIND', 'SEVERITY'), default=None,
                        help='fit P_degraded: degrade the selected images (RGBDegradation kind '
                        'and severity 0-5) before extracting features')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--num-workers', type=int, default=0)
    parser.add_argument('--device', default=None, help='default: cuda if available, else cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config (key=value)')
    return parser.parse_args(argv)


def disable_gmm_losses(node) -> int:
    """Set ``gmm_file=None`` in every ``GMMNegLogLikelihoodLoss`` of a config (in place).

    Returns:
        int: How many were changed.
    """
    count = 0
    if isinstance(node, dict):
        if str(node.get('type', '')).split('.')[-1] == 'GMMNegLogLikelihoodLoss':
            node['gmm_file'] = None
            count += 1
        for value in node.values():
            count += disable_gmm_losses(value)
    elif isinstance(node, (list, tuple)):
        count += sum(disable_gmm_losses(value) for value in node)
    return count


def feature_dataset_cfg(cfg: Config, split: str) -> ConfigDict:
    """The ``split`` dataloader's dataset config with the config's test pipeline.

    Raises:
        KeyError: If the config has no such dataloader or no test pipeline.
        ValueError: If the dataset is a multi-dataset wrapper, or the test pipeline
            degrades the RGB image (the prior must see clean images).
    """
    key = f'{split}_dataloader'
    if cfg.get(key) is None:
        raise KeyError(f'{cfg.filename}: no {key} to read the {split} images from')
    dataset = copy.deepcopy(cfg[key].dataset)
    while str(dataset.get('type', '')).split('.')[-1] in _WRAPPERS and 'dataset' in dataset:
        dataset = dataset.dataset
    if 'datasets' in dataset:
        raise ValueError(f'{cfg.filename}: {key} uses {dataset.get("type")} over several '
                         'datasets; fit on one dataset (--cfg-options to point at it)')
    if cfg.get('test_dataloader') is not None:
        test_dataset = cfg.test_dataloader.dataset
        while 'pipeline' not in test_dataset and 'dataset' in test_dataset:
            test_dataset = test_dataset.dataset
        pipeline = test_dataset.get('pipeline')
    else:
        pipeline = cfg.get('test_pipeline')
    if not pipeline:
        raise KeyError(f'{cfg.filename}: no test_dataloader pipeline (or test_pipeline): the '
                       'images must be read without augmentation')
    if 'Load' not in str(pipeline[0].get('type', '')):
        raise ValueError(f'{cfg.filename}: the test pipeline must start with the image loading '
                         f'transform (it is used alone to measure the raw image), got '
                         f'{pipeline[0].get("type")}')
    degrading = [t['type'] for t in pipeline if 'Degradation' in str(t.get('type', ''))]
    if degrading:
        raise ValueError(f'{cfg.filename}: the test pipeline applies {degrading}; the normal '
                         'prior must be fitted on clean images')
    dataset.pipeline = copy.deepcopy(pipeline)
    return dataset


class _ImageStatistics(TorchDataset):
    """(brightness, contrast, img_path) of each sample's raw RGB image.

    The image is read by the test pipeline's loading transform alone (no resize, no padding,
    no normalisation), i.e. the raw RGB image, scaled to [0, 1] by ``image_statistics``.
    """

    def __init__(self, dataset, load_cfg: dict, channel_order: str) -> None:
        from mmcv.transforms import Compose
        self.dataset = dataset
        self.load = Compose([load_cfg])
        self.channel_order = channel_order

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int):
        results = self.load(self.dataset.get_data_info(idx))
        if results is None or results.get('img') is None:
            raise RuntimeError(f'sample {idx}: the loading transform returned no image')
        return (*image_statistics(results['img'], self.channel_order),
                results.get('img_path'))


def degrade_after_loading(dataset_cfg: ConfigDict, kind: str, severity: float,
                          seed: int) -> ConfigDict:
    """Copy of ``dataset_cfg`` whose pipeline degrades the RGB image right after loading.

    Raises:
        ValueError: If ``kind`` is not a degradation of
            :class:`~mmfusion.datasets.transforms.RGBDegradation` (raised when built).
    """
    degraded = copy.deepcopy(dataset_cfg)
    degraded.pipeline.insert(
        1, dict(type='RGBDegradation', kind=kind, severity=severity, seed=seed))
    return degraded


def measure_images(dataset, load_cfg: dict, num_workers: int, channel_order: str):
    """Brightness and contrast (both (N,)) of every raw RGB image, and the N image paths."""
    loader = DataLoader(_ImageStatistics(dataset, load_cfg, channel_order), batch_size=None,
                        num_workers=num_workers, shuffle=False)
    stats = list(loader)
    return (np.asarray([s[0] for s in stats], dtype=np.float64),
            np.asarray([s[1] for s in stats], dtype=np.float64), [s[2] for s in stats])


@torch.no_grad()
def extract_features(model, dataset, batch_size: int, num_workers: int) -> np.ndarray:
    """(N, d) float64 CLS features of the dataset's samples, in order."""
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                        collate_fn=pseudo_collate, shuffle=False)
    features = []
    for batch in loader:
        data = model.data_preprocessor(batch, False)
        cls = model.extract_cls_features(data['inputs']['img'])
        if cls.dim() != 2 or cls.shape[0] != len(batch['data_samples']):
            raise ValueError(f'extract_cls_features must return (B, d), got '
                             f'{tuple(cls.shape)} for B={len(batch["data_samples"])}')
        features.append(cls.double().cpu().numpy())
    return np.concatenate(features, 0)


def main(argv: Optional[List[str]] = None) -> dict:
    """Run the tool; returns the record written to ``--out``."""
    args = parse_args(argv)
    restore_mmengine_checkpoint_loading()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    from mmdet.registry import DATASETS, MODELS

    model_cfg = copy.deepcopy(cfg.model)
    if disable_gmm_losses(model_cfg):
        print_log('GMMNegLogLikelihoodLoss built without its prior (gmm_file=None) to fit it',
                  logger='current')
    model = MODELS.build(model_cfg)
    if not hasattr(model, 'extract_cls_features'):
        raise TypeError(f'{type(model).__name__} has no extract_cls_features(imgs) -> (B, d); '
                        'the prior is fitted on the CLS features of the frozen RGB encoder')
    load_checkpoint(model, args.checkpoint, map_location='cpu', strict=False,
                    logger='current')
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model.to(device).eval()

    dataset_cfg = feature_dataset_cfg(cfg, args.split)
    dataset = DATASETS.build(dataset_cfg)
    print_log(f'{len(dataset)} {args.split} samples; measuring brightness and contrast',
              logger='current')
    brightness, contrast, paths = measure_images(dataset, dataset_cfg.pipeline[0],
                                                 args.num_workers, args.channel_order)
    selector = NormalSampleSelector(args.brightness_range, args.min_contrast, args.num_bins)
    indices, summary = selector.select(brightness, contrast, args.num_samples, args.seed)
    strata = ', '.join(f'[{b["low"]:.2f}, {b["high"]:.2f}]: {b["selected"]}/{b["candidates"]}'
                       for b in summary['bins'])
    print_log(f'normal samples: {summary["num_normal"]} of {summary["num_images"]} '
              f'(rejected {summary["rejected"]}); selected {summary["num_selected"]}; '
              f'selected/candidates per brightness bin: {strata}', logger='current')
    if len(indices) < 2:
        raise RuntimeError(
            f'only {len(indices)} of {len(brightness)} {args.split} images are normal '
            f'(brightness in {list(selector.brightness_range)}, contrast > '
            f'{selector.min_contrast}); observed brightness {summary["all"]["brightness"]}, '
            f'contrast {summary["all"]["contrast"]}. Use a split with well-exposed images or '
            'adjust --brightness-range/--min-contrast')

    degradation = None
    if args.degradation is not None:
        degradation = dict(kind=args.degradation[0], severity=float(args.degradation[1]))
        dataset = DATASETS.build(
            degrade_after_loading(dataset_cfg, degradation['kind'], degradation['severity'],
                                  args.seed))
        print_log(f'P_degraded: features of the selected images under {degradation}',
                  logger='current')
    features = extract_features(model, Subset(dataset, indices.tolist()), args.batch_size,
                                args.num_workers)
    gmm, bic, info = fit_gmm_by_bic(features, args.k_range, args.seed)
    prior = GaussianMixturePrior.from_sklearn(gmm)
    record = dict(
        chosen_k=int(info['chosen_k']), bic={int(k): float(v) for k, v in bic.items()},
        k_selection=info, selection=summary,
        selected_images=[paths[i] for i in indices], selected_indices=indices.tolist(),
        config=osp.abspath(args.config), checkpoint=args.checkpoint, split=args.split,
        seed=args.seed, num_samples_requested=args.num_samples,
        feature_source='extract_cls_features', degradation=degradation,
        created=time.strftime('%Y-%m-%d %H:%M:%S'))
    prior.save(args.out, **record)
    print_log(f'Gaussian mixture (K={prior.num_components}, d={prior.feature_dim}, '
              f'{len(features)} samples) written to {args.out}', logger='current')
    return record


if __name__ == '__main__':
    main()
