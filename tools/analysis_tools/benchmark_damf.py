"""Benchmark DAMF (ViT-B/16 + DETR): parameters, stage-2 vs end-to-end training step, inference.

Paper: "Distribution-Aligned Multimodal Fusion for Robust Object Detection" (DAMF), CVPR 2026,
claims a lightweight fusion module (15% of all parameters) and 4x faster training than
end-to-end training. This script measures, for one model built from a DAMF stage-2 config
(default: the LLVIP one, ViT-B/16 + DETR, 640x512 input):

- parameters: trainable and total, stage 2 (detector frozen) and end-to-end (nothing frozen);
- training step time (``model.train_step``: data preprocessor, forward, loss, backward,
  AdamW step through mmengine's OptimWrapper, as the runner does) of stage 2
  (``freeze_detector=True``: the ViT runs under ``torch.no_grad``, only the fusion module has
  gradients) vs end-to-end (the same model and loss with ``freeze_detector=False``);
- inference latency (``model.test_step``, eval mode, ``torch.no_grad``) of the stage-0 RGB
  detector and of the stage-2 RGB + infrared detector.

Each mode reports wall-clock seconds and the process's CPU seconds (``time.process_time``) per
step; on a shared machine the CPU seconds are the steadier measure of cost.

Input: real LLVIP pairs from tests/data/llvip (converted to a temporary folder), through the
config's own pipelines (train pipeline with its degradation for training, test pipeline for
inference): 1280x1024 resized to 640x512 (W x H), 32 x 40 = 1280 patch tokens per modality.
The paper's input size is not given in the material available to us; 640x512 is the native size
of FLIR-aligned and DroneVehicle frames and LLVIP's frames halved (see projects/DAMF/README.md).
The Gaussian-mixture prior is synthetic (K=8, d=768, seeded): it only changes the loss value,
not the cost. The detector weights are random (no checkpoint is needed for timing).

Example::

    python tools/analysis_tools/benchmark_damf.py --batch 1 --repeat 3 \\
        --out docs/benchmarks/damf_cpu-2core-epyc.json
"""
import argparse
import copy
import json
import os
import os.path as osp
import platform
import statistics
import sys
import tempfile
import time

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join('projects', 'DAMF', 'configs',
                          'damf-stage2_vit-b16-detr_8xb2-12e_llvip.py')
LLVIP_SAMPLE = osp.join(REPO_ROOT, 'tests', 'data', 'llvip', 'LLVIP') + '/'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='a DAMF stage-2 config')
    parser.add_argument('--batch', type=int, default=1, help='images per step')
    parser.add_argument('--repeat', type=int, default=3, help='timed steps per mode')
    parser.add_argument('--warmup', type=int, default=1, help='untimed steps per mode')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    parser.add_argument('--modes', nargs='+',
                        default=['train_stage2', 'train_end_to_end', 'infer_stage0',
                                 'infer_stage2'],
                        choices=['train_stage2', 'train_end_to_end', 'infer_stage0',
                                 'infer_stage2'])
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='work_dirs/benchmarks/damf_cpu.json')
    return parser.parse_args(argv)


def synthetic_prior(path, dim, k=8, seed=0):
    """A valid diagonal Gaussian mixture file (K components, d dims) for the loss."""
    from mmfusion.models.losses.gmm_nll_loss import GaussianMixturePrior
    gen = torch.Generator().manual_seed(seed)
    GaussianMixturePrior(torch.full((k, ), 1.0 / k), torch.randn(k, dim, generator=gen),
                         torch.rand(k, dim, generator=gen) + 0.5).save(path)


def load_config(args, tmp):
    """The config, pointed at the converted LLVIP sample and a synthetic prior."""
    from mmfusion.converters.llvip import create_llvip_infos
    cfg = Config.fromfile(args.config)
    infos = create_llvip_infos(LLVIP_SAMPLE, osp.join(tmp, 'infos'))
    for key in ('train_dataloader', 'test_dataloader'):
        ds = cfg[key].dataset
        ds.data_root = ''
        ds.data_prefix = dict(img=LLVIP_SAMPLE, img_ir=LLVIP_SAMPLE)
        ds.ann_file = infos['test']
    gmm = osp.join(tmp, 'gmm.pth')
    synthetic_prior(gmm, cfg.model.fusion.embed_dims)
    cfg.model.align_loss.gmm_file = gmm
    cfg.model.backbone.init_cfg = None
    cfg.load_from = None
    return cfg


def make_batch(cfg, key, batch):
    from mmdet.registry import DATASETS
    dataset = DATASETS.build(copy.deepcopy(cfg[key].dataset))
    return pseudo_collate([dataset[i % len(dataset)] for i in range(batch)])


def build_model(cfg, seed, **overrides):
    from mmdet.registry import MODELS
    torch.manual_seed(seed)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.update(overrides)
    return MODELS.build(model_cfg)


def count(model):
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return dict(trainable=trainable, total=total, trainable_fraction=trainable / total)


def time_steps(step, warmup, repeat):
    for _ in range(warmup):
        step()
    times, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        print(f'  {times[-1]:.3f} s wall, {cpu[-1]:.3f} s CPU', flush=True)
    return dict(best_s=min(times), median_s=statistics.median(times), times_s=times,
                cpu_best_s=min(cpu), cpu_median_s=statistics.median(cpu), cpu_s=cpu)


def run_mode(mode, cfg, args, train_batch, test_batch):
    if mode.startswith('train'):
        frozen = mode == 'train_stage2'
        model = build_model(cfg, args.seed, freeze_detector=frozen)
        optim_cfg = copy.deepcopy(cfg.optim_wrapper)
        if not frozen:  # the end-to-end ablation's optimiser: ViT lr x 0.1, as in stage 0
            optim_cfg.paramwise_cfg = dict(custom_keys={'backbone': dict(lr_mult=0.1)})
        optim_wrapper = build_optim_wrapper(model, optim_cfg)
        model.train()
        result = time_steps(lambda: model.train_step(train_batch, optim_wrapper),
                            args.warmup, args.repeat)
        result['parameters'] = count(model)
        return result
    model = build_model(cfg, args.seed, **({} if mode == 'infer_stage2' else dict(
        fusion=None, align_loss=None, freeze_detector=False, det_loss_weight=1.0)))
    model.eval()
    with torch.no_grad():
        result = time_steps(lambda: model.test_step(test_batch), args.warmup, args.repeat)
    result['parameters'] = count(model)
    return result


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    init_default_scope('mmdet')
    import mmfusion.det  # noqa: F401
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(args, tmp)
        train_batch = make_batch(cfg, 'train_dataloader', args.batch)
        test_batch = make_batch(cfg, 'test_dataloader', args.batch)
        results = {}
        for mode in args.modes:
            print(f'{mode}:', flush=True)
            results[mode] = run_mode(mode, cfg, args, train_batch, test_batch)
    input_shape = tuple(train_batch['inputs']['img'][0].shape[-2:])
    speedups = {}
    for name, (slow, fast) in (('train_end_to_end_over_stage2',
                                ('train_end_to_end', 'train_stage2')),
                               ('infer_stage2_over_stage0', ('infer_stage2', 'infer_stage0'))):
        if {slow, fast} <= set(results):
            speedups[name] = {key: results[slow][key] / results[fast][key] for key in (
                'best_s', 'median_s', 'cpu_best_s', 'cpu_median_s')}
    report = dict(
        config=dict(model_config=args.config, batch=args.batch, input_hw=input_shape,
                    patch_tokens_per_modality=(input_shape[0] // 16) * (input_shape[1] // 16),
                    repeat=args.repeat, warmup=args.warmup, threads=torch.get_num_threads(),
                    dtype='float32', prior='synthetic, K=8, d=768',
                    train_step='model.train_step: preprocess, forward, loss, backward, AdamW '
                               '(mmengine OptimWrapper, grad clip 0.1)',
                    inference='model.test_step, eval, torch.no_grad, batch of real LLVIP '
                              'pairs'),
        results=results,
        speedups=speedups,
        env=dict(torch=torch.__version__, python=platform.python_version(),
                 machine=platform.machine(), processor=platform.processor(),
                 cpu_count=os.cpu_count(), load_average_at_start=load_start,
                 load_average_at_end=os.getloadavg(),
                 omp_num_threads=os.environ.get('OMP_NUM_THREADS')),
        command='python tools/analysis_tools/benchmark_damf.py ' + ' '.join(argv),
    )
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=2)
    print(json.dumps(dict(speedups=speedups, parameters={
        k: v['parameters'] for k, v in results.items()}), indent=2))
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
