"""Test (evaluate) a checkpoint with mmengine's Runner.

Flags follow mmdet3d/mmdet ``tools/test.py``. Besides the runner's own logs, the metrics are
written to ``<work_dir>/test_metrics.json``. Leaderboard files are produced by the config's
evaluator (e.g. ``--cfg-options test_evaluator.format_only=True
test_evaluator.submission_prefix=results/kitti`` for KITTI).
"""
import argparse
import json
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.dist import is_main_process
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmfusion.utils import setup_distributed
from mmfusion.utils.cli import add_safety_arguments, check_run_inputs, run_main
from mmfusion.utils.visualization_hooks import configure_visualization


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the directory to save the file containing evaluation metrics')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir', help='directory where painted images will be saved, relative to '
        'work_dir/timestamp (as the stock tools); the config\'s visualization hook draws every '
        'test sample')
    parser.add_argument('--score-thr', type=float, help='bbox score threshold for drawing')
    parser.add_argument(
        '--task', choices=['mono_det', 'multi-view_det', 'lidar_det', 'lidar_seg',
                           'multi-modality_det'],
        help='mmdet3d visualization task (Det3DVisualizationHook.vis_task)')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--out', help='dump predictions to a pickle file (mmengine DumpResults metric)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, e.g. test_evaluator.pklfile_prefix=results')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_safety_arguments(parser)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint

    if args.show or args.show_dir:
        # host-aware hook keys, pictures under <work_dir>/<timestamp>/<show_dir>, drawing
        # errors logged without stopping the test (mmfusion/utils/visualization_hooks.py)
        configure_visualization(cfg, args.show_dir, args.show, args.wait_time, args.score_thr,
                                args.task)
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl file, got {args.out}')
        cfg.test_evaluator = [cfg.test_evaluator] if isinstance(
            cfg.test_evaluator, dict) else list(cfg.test_evaluator)
        cfg.test_evaluator.append(dict(type='DumpResults', out_file_path=args.out))

    check_run_inputs(cfg, args, ('test_dataloader',))
    setup_distributed(cfg)

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    metrics = runner.test()
    if is_main_process():
        out = osp.join(cfg.work_dir, 'test_metrics.json')
        with open(out, 'w') as f:
            json.dump({k: float(v) if hasattr(v, '__float__') else v
                       for k, v in metrics.items()}, f, indent=2)
        print(f'metrics written to {out}')


if __name__ == '__main__':
    sys.exit(run_main(main, 'tools/test.py'))
