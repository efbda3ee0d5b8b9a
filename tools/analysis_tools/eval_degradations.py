"""Test one checkpoint on clean and RGB-degraded versions of its test set; write a table.

The robustness protocol of RGB + infrared detection papers (DAMF, CVPR 2026: train on one RGB
degradation, test on seen and unseen ones, and per scene): for every test set, the config's
``test_dataloader`` pipeline gets the set's degradation transform inserted right after its image
loading transform (``LoadPairedImageFromFile`` / ``LoadImageFromFile``), and mmengine's Runner
tests the checkpoint on it, as ``tools/test.py`` does (one Runner per set, work dir
``<work-dir>/<set>``). The visible image alone is degraded (see
:mod:`mmfusion.datasets.transforms.degradations`); the infrared image stays clean.

Test sets, in this order of precedence:

- ``--test-sets NAME``: a dict variable of the config, ``{set name: transform dict or None}``
  (None: clean), e.g. ``degradation_test_sets`` or ``scene_test_sets`` from
  ``configs/_base_/degradations/``;
- otherwise ``clean`` (unless ``--no-clean``) and ``<kind>-s<severity>`` for every ``--kinds``
  x ``--severities`` (default: every kind at severity 3), ``RGBDegradation(seed=--seed)``.

Each row is marked ``clean``, ``seen`` (its kind is one the model was trained on: the config's
``train_degradation`` kinds, or ``--seen-kinds``) or ``unseen``.

Outputs in ``--work-dir`` (default ``work_dirs/<config name>/degradations``):
``degradation_results.json`` (config, checkpoint, seen kinds, per set: name, transform, kind,
severity, split, metrics) and ``degradation_results.md`` (a markdown table of the numeric
metrics, or of ``--metric-keys``).

Example::

    python tools/analysis_tools/eval_degradations.py CONFIG CHECKPOINT \\
        --kinds overexposure underexposure night blur fog --severities 1 3 5
    python tools/analysis_tools/eval_degradations.py CONFIG CHECKPOINT \\
        --test-sets scene_test_sets
"""
import argparse
import copy
import json
import os
import os.path as osp
import time
from collections import OrderedDict
from typing import Dict, List, Optional

from mmengine.config import Config, DictAction
from mmengine.dist import is_main_process
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmfusion.datasets.transforms.degradations import DEGRADATION_KINDS
from mmfusion.utils import setup_distributed
from mmfusion.utils.compat import restore_mmengine_checkpoint_loading


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Test a checkpoint on clean and RGB-degraded test sets')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--test-sets', metavar='NAME',
                        help='config variable {set: transform or None} to test on')
    parser.add_argument('--kinds', nargs='+', choices=DEGRADATION_KINDS,
                        default=list(DEGRADATION_KINDS), help='degradation kinds')
    parser.add_argument('--severities', nargs='+', type=float, default=[3],
                        help='severities (1..5; fractions interpolate)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the degradations')
    parser.add_argument('--no-clean', action='store_true', help='skip the clean test set')
    parser.add_argument('--seen-kinds', nargs='*',
                        help="kinds seen in training (default: the config's train_degradation)")
    parser.add_argument('--metric-keys', nargs='+', help='metrics shown in the markdown table')
    parser.add_argument('--work-dir', help='folder of the per-set runs and the tables')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config (key=value)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _severity(value: float):
    return int(value) if float(value).is_integer() else float(value)


def build_test_sets(cfg: Config,
                    args: argparse.Namespace) -> 'OrderedDict[str, Optional[dict]]':
    """The ``{name: degradation transform dict or None}`` to test on (see module doc).

    Raises:
        KeyError: If ``--test-sets`` names no dict variable of the config.
    """
    if args.test_sets:
        sets = cfg.get(args.test_sets)
        if not isinstance(sets, dict):
            raise KeyError(f'{cfg.filename}: no dict variable {args.test_sets!r} of test sets '
                           '(include a configs/_base_/degradations/ base, or use --kinds)')
        return OrderedDict((name, None if t is None else dict(t)) for name, t in sets.items())
    sets = OrderedDict() if args.no_clean else OrderedDict(clean=None)
    for kind in args.kinds:
        for severity in args.severities:
            severity = _severity(severity)
            sets[f'{kind}-s{severity}'] = dict(type='RGBDegradation', kind=kind,
                                               severity=severity, seed=args.seed)
    return sets


def seen_kinds(cfg: Config, args: argparse.Namespace) -> Optional[List[str]]:
    """Kinds the model was trained on: ``--seen-kinds``, else the config's
    ``train_degradation`` (``kinds`` or ``kind``), else None (unknown)."""
    if args.seen_kinds is not None:
        return list(args.seen_kinds)
    train = cfg.get('train_degradation')
    if not train:
        return None
    kinds = train.get('kinds', train.get('kind'))
    return [kinds] if isinstance(kinds, str) else list(kinds)


def _pipeline_owner(dataset_cfg: dict) -> dict:
    """The (possibly wrapped) dataset config that holds the pipeline."""
    while 'pipeline' not in dataset_cfg and 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    if 'pipeline' not in dataset_cfg:
        raise KeyError('test_dataloader.dataset has no pipeline')
    return dataset_cfg


def insert_after_loading(pipeline: List[dict], transform: dict) -> List[dict]:
    """A copy of ``pipeline`` with ``transform`` right after the image loading transform.

    Raises:
        ValueError: If no transform of the pipeline loads the image (type matching
            ``Load*ImageFromFile``).
    """
    for i, step in enumerate(pipeline):
        name = str(step.get('type', '')).split('.')[-1]
        if name.startswith('Load') and name.endswith('ImageFromFile'):
            return list(pipeline[:i + 1]) + [copy.deepcopy(transform)] + list(pipeline[i + 1:])
    raise ValueError('the test pipeline has no image loading transform (LoadPairedImageFromFile '
                     f'or LoadImageFromFile) to put the degradation after: '
                     f'{[s.get("type") for s in pipeline]}')


def set_config(cfg: Config, name: str, transform: Optional[dict], checkpoint: str,
               work_dir: str) -> Config:
    """The config that tests ``checkpoint`` on one test set."""
    cfg = copy.deepcopy(cfg)
    if transform is not None:
        owner = _pipeline_owner(cfg.test_dataloader.dataset)
        owner['pipeline'] = insert_after_loading(owner['pipeline'], transform)
    cfg.work_dir = osp.join(work_dir, name)
    cfg.load_from = checkpoint
    cfg.experiment_name = f'{name}_{time.strftime("%Y%m%d_%H%M%S")}'
    return cfg


def _describe(transform: Optional[dict]) -> Dict:
    if transform is None:
        return dict(kind=None, severity=0)
    kinds = transform.get('kinds', transform.get('kind'))
    kinds = '+'.join(kinds) if isinstance(kinds, (list, tuple)) else kinds
    severity = transform.get('severities', transform.get('severity'))
    return dict(kind=kinds, severity=list(severity) if isinstance(severity, (list, tuple))
                else severity)


def _split(kind: Optional[str], seen: Optional[List[str]]) -> str:
    if kind is None:
        return 'clean'
    if seen is None:
        return '-'
    return 'seen' if set(kind.split('+')) <= set(seen) else 'unseen'


def write_tables(record: dict, out_dir: str, metric_keys: Optional[List[str]] = None):
    """Write ``degradation_results.json`` and ``.md``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    json_path = osp.join(out_dir, 'degradation_results.json')
    with open(json_path, 'w') as f:
        json.dump(record, f, indent=2)
    rows = record['sets']
    if metric_keys is None:
        metric_keys = []
        for row in rows:
            metric_keys += [k for k, v in row['metrics'].items()
                            if isinstance(v, (int, float)) and k not in metric_keys]
    lines = ['| set | kind | severity | split | ' + ' | '.join(metric_keys) + ' |',
             '|' + '---|' * (4 + len(metric_keys))]
    for row in rows:
        values = []
        for key in metric_keys:
            value = row['metrics'].get(key)
            values.append('-' if value is None else
                          f'{value:.4f}' if isinstance(value, float) else str(value))
        lines.append(f'| {row["name"]} | {row["kind"] or "-"} | {row["severity"]} | '
                     f'{row["split"]} | ' + ' | '.join(values) + ' |')
    md_path = osp.join(out_dir, 'degradation_results.md')
    with open(md_path, 'w') as f:
        f.write(f'Checkpoint `{record["checkpoint"]}`, config `{record["config"]}`; seen kinds: '
                f'{record["seen_kinds"]}.\n\n' + '\n'.join(lines) + '\n')
    return json_path, md_path


def main(argv: Optional[List[str]] = None) -> dict:
    """Run every test set; returns the record written to ``degradation_results.json``."""
    args = parse_args(argv)
    restore_mmengine_checkpoint_loading()
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    work_dir = args.work_dir or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0], 'degradations')
    setup_distributed(cfg)
    seen = seen_kinds(cfg, args)
    record = dict(config=osp.abspath(args.config), checkpoint=args.checkpoint, seen_kinds=seen,
                  created=time.strftime('%Y-%m-%d %H:%M:%S'), sets=[])
    for name, transform in build_test_sets(cfg, args).items():
        set_cfg = set_config(cfg, name, transform, args.checkpoint, work_dir)
        runner = Runner.from_cfg(set_cfg) if 'runner_type' not in set_cfg \
            else RUNNERS.build(set_cfg)
        metrics = runner.test()
        described = _describe(transform)
        record['sets'].append(dict(
            name=name, transform=transform, split=_split(described['kind'], seen),
            metrics={k: float(v) if isinstance(v, (int, float)) or hasattr(v, '__float__')
                     else v for k, v in metrics.items()}, **described))
    if is_main_process():
        json_path, md_path = write_tables(record, work_dir, args.metric_keys)
        print(f'results written to {json_path} and {md_path}')
    return record


if __name__ == '__main__':
    main()
