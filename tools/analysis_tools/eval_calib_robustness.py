"""Test one LiDAR + camera checkpoint under LiDAR-camera calibration errors; write a table.

The calibration-robustness protocol of issue 3 (SSLFusion, arXiv 2504.05170, and LiDAR-camera
fusion papers in general): the same checkpoint is tested with a rigid extrinsic error of growing
magnitude, the points and ground truth untouched. For every level (rotation in degrees,
translation in cm) the config's test pipeline gets
:class:`mmfusion.datasets.transforms.PerturbCalibration` inserted right after its image loading
transform (so before ``MultiScaleFlipAug3D`` and ``Pack3DDetInputs``), and mmengine's Runner
tests the checkpoint as ``tools/test.py`` does (one Runner per level, work dir
``<out>/<level>``). The insertion and per-level config are the ones of
``tools/analysis_tools/eval_degradations.py`` (``set_config``), reused, not copied.

Levels: ``clean`` (no error) unless ``--no-clean``; then every ``--rotations`` value with no
translation and every ``--translations`` value with no rotation (one factor at a time), or with
``--grid`` every (rotation, translation) pair. By default each frame's rotation axis and
translation direction are random (uniform on the sphere, seeded by ``--seed`` and the frame,
identical between runs); ``--rotation-axis roll|pitch|yaw`` and ``--translation-axis x|y|z``
fix them (positive direction; camera axes, see :mod:`mmfusion.datasets.transforms.
calib_perturbation`).

Outputs in ``--out`` (default ``work_dirs/<config name>/calib_robustness``):
``calib_robustness.json`` (config, checkpoint, seed, axes, per level: name, rotation_deg,
translation_cm, transform, all metrics) and ``calib_robustness.md`` (a markdown table of
``--metric-keys``; default KITTI AP_R40 at moderate difficulty, 3D and BEV, of Car (IoU 0.7),
Pedestrian and Cyclist (IoU 0.5); keys are matched on their end, so the evaluator prefix
``Kitti metric/pred_instances_3d/KITTI/`` may be left out).

Example::

    python tools/analysis_tools/eval_calib_robustness.py CONFIG CHECKPOINT \\
        --rotations 0.5 1 2 --translations 5 10 20 --seed 0 --out work_dirs/calib
"""
import argparse
import importlib.util
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

from mmfusion.utils import setup_distributed
from mmfusion.utils.compat import restore_mmengine_checkpoint_loading

DEFAULT_METRIC_KEYS = [
    f'{cls}_{kind}_AP40_moderate_strict' for cls in ('Car', 'Pedestrian', 'Cyclist')
    for kind in ('3D', 'BEV')
]
ROTATION_AXES = dict(roll=0, pitch=1, yaw=2)  # index in PerturbCalibration's (roll, pitch, yaw)
TRANSLATION_AXES = dict(x=0, y=1, z=2)


def _eval_degradations():
    """The sibling tool ``eval_degradations.py`` (not a package module: loaded by path)."""
    path = osp.join(osp.dirname(osp.abspath(__file__)), 'eval_degradations.py')
    spec = importlib.util.spec_from_file_location('mmfusion_eval_degradations_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Test a checkpoint under LiDAR-camera calibration errors')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--rotations', nargs='*', type=float, default=[0.5, 1., 2.],
                        help='rotation error levels, degrees')
    parser.add_argument('--translations', nargs='*', type=float, default=[5., 10., 20.],
                        help='translation error levels, centimetres')
    parser.add_argument('--grid', action='store_true',
                        help='test every (rotation, translation) pair instead of one at a time')
    parser.add_argument('--rotation-axis', choices=['random'] + list(ROTATION_AXES),
                        default='random', help='axis of the rotation error (camera frame)')
    parser.add_argument('--translation-axis', choices=['random'] + list(TRANSLATION_AXES),
                        default='random', help='direction of the translation error')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random axes')
    parser.add_argument('--no-clean', action='store_true', help='skip the level without error')
    parser.add_argument('--metric-keys', nargs='+', default=DEFAULT_METRIC_KEYS,
                        help='metrics shown in the markdown table (matched on their end)')
    parser.add_argument('--out', help='folder of the per-level runs and the tables')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config (key=value)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    for name in ('rotations', 'translations'):
        if any(v < 0 for v in getattr(args, name)):
            parser.error(f'--{name} are magnitudes (>= 0); use the --*-axis options for a '
                         'fixed axis')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _fmt(value: float) -> str:
    return f'{value:g}'


def perturbation(rotation: float, translation: float, rotation_axis: str = 'random',
                 translation_axis: str = 'random', seed: int = 0) -> Optional[dict]:
    """The ``PerturbCalibration`` transform dict of one level (None for no error)."""
    if rotation == 0 and translation == 0:
        return None
    rot = rotation
    if rotation_axis != 'random':
        rot = [0., 0., 0.]
        rot[ROTATION_AXES[rotation_axis]] = rotation
    trans = translation
    if translation_axis != 'random':
        trans = [0., 0., 0.]
        trans[TRANSLATION_AXES[translation_axis]] = translation
    return dict(type='PerturbCalibration', rotation_deg=rot, translation_cm=trans, seed=seed)


def build_levels(args: argparse.Namespace) -> 'OrderedDict[str, dict]':
    """``{level name: dict(rotation_deg, translation_cm, transform)}`` in test order."""
    pairs = [] if args.no_clean else [(0., 0.)]
    if args.grid:
        pairs += [(r, t) for r in [0.] + args.rotations for t in [0.] + args.translations]
    else:
        pairs += [(r, 0.) for r in args.rotations] + [(0., t) for t in args.translations]
    levels = OrderedDict()
    for rot, trans in pairs:
        parts = ([f'rot{_fmt(rot)}deg'] if rot else []) + ([f'trans{_fmt(trans)}cm']
                                                           if trans else [])
        name = '-'.join(parts) or 'clean'
        if name in levels or (name == 'clean' and args.no_clean):
            continue
        levels[name] = dict(
            rotation_deg=rot, translation_cm=trans,
            transform=perturbation(rot, trans, args.rotation_axis, args.translation_axis,
                                   args.seed))
    return levels


def pick(metrics: Dict[str, float], key: str) -> Optional[float]:
    """The value of ``key`` in ``metrics``, matched exactly or on a ``/``-separated end."""
    if key in metrics:
        return metrics[key]
    found = [v for k, v in metrics.items() if k.endswith('/' + key)]
    return found[0] if len(found) == 1 else None


def write_tables(record: dict, out_dir: str, metric_keys: List[str]):
    """Write ``calib_robustness.json`` and ``.md``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    json_path = osp.join(out_dir, 'calib_robustness.json')
    with open(json_path, 'w') as f:
        json.dump(record, f, indent=2)
    lines = ['| level | rotation (deg) | translation (cm) | ' + ' | '.join(metric_keys) + ' |',
             '|' + '---|' * (3 + len(metric_keys))]
    for row in record['levels']:
        values = [pick(row['metrics'], key) for key in metric_keys]
        lines.append(f'| {row["name"]} | {_fmt(row["rotation_deg"])} | '
                     f'{_fmt(row["translation_cm"])} | ' + ' | '.join(
                         '-' if v is None else f'{v:.2f}' for v in values) + ' |')
    md_path = osp.join(out_dir, 'calib_robustness.md')
    with open(md_path, 'w') as f:
        f.write(f'Checkpoint `{record["checkpoint"]}`, config `{record["config"]}`; rotation '
                f'axis {record["rotation_axis"]}, translation axis {record["translation_axis"]}, '
                f'seed {record["seed"]}.\n\n' + '\n'.join(lines) + '\n')
    return json_path, md_path


def main(argv: Optional[List[str]] = None) -> dict:
    """Test every level; returns the record written to ``calib_robustness.json``."""
    args = parse_args(argv)
    restore_mmengine_checkpoint_loading()
    set_config = _eval_degradations().set_config
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    out_dir = args.out or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0], 'calib_robustness')
    setup_distributed(cfg)
    record = dict(config=osp.abspath(args.config), checkpoint=args.checkpoint, seed=args.seed,
                  rotation_axis=args.rotation_axis, translation_axis=args.translation_axis,
                  created=time.strftime('%Y-%m-%d %H:%M:%S'), levels=[])
    for name, level in build_levels(args).items():
        level_cfg = set_config(cfg, name, level['transform'], args.checkpoint, out_dir)
        runner = Runner.from_cfg(level_cfg) if 'runner_type' not in level_cfg \
            else RUNNERS.build(level_cfg)
        metrics = runner.test()
        record['levels'].append(dict(
            name=name, **level,
            metrics={k: float(v) if hasattr(v, '__float__') else v for k, v in metrics.items()}))
    if is_main_process():
        json_path, md_path = write_tables(record, out_dir, args.metric_keys)
        print(f'results written to {json_path} and {md_path}')
    return record


if __name__ == '__main__':
    main()
