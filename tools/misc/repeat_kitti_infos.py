"""Repeat the frames of an mmdet3d v2 KITTI info file, so that small sets can reach AP 100.

Why: the KITTI protocol as mmdet3d 1.4 implements it (``mmdet3d.evaluation.functional.
kitti_utils.eval``: ``get_thresholds``, ``eval_class``, ``get_mAP11`` / ``get_mAP40``) samples
the precision at one score threshold per matched ground-truth box, at most 41 of them, and
reads AP_R40 as ``sum(precision[1:41]) / 40 * 100`` and AP_R11 as ``sum(precision[0:41:4]) /
11 * 100``. ``get_thresholds`` keeps a true positive's score while the recall it reaches is
ahead of the next of the 41 sampling points; with ``n <= 40`` valid boxes of a class and
difficulty every recall step ``1/n`` is larger than ``1/40``, so all ``n`` scores are kept and
only ``precision[0:n]`` is non-zero. Perfect detections of ``n < 41`` boxes therefore score
exactly::

    AP_R40 = (n - 1) / 40 * 100            AP_R11 = (floor((n - 1) / 4) + 1) / 11 * 100

(``n`` counts the boxes the difficulty keeps: ``clean_data``'s height / occlusion / truncation
limits; ``n_TP`` instead of ``n`` when not every box is found, at precision 1). With
``n >= 41`` perfect detections score 100. Repeating every frame ``k`` times multiplies every
count by ``k``.

What this writes: the same ``metainfo`` and the ``data_list`` repeated ``k`` times (deep copies,
file paths unchanged), with ``sample_idx`` renumbered ``0..N-1`` in list order. KittiMetric
looks ground truth up as ``data_infos[result['sample_idx']]`` (a list index), and the
``sample_idx`` the pipeline carries is the dataset index (mmengine ``BaseDataset.get_data_info``
overwrites it), so results and ground truth stay aligned; the renumbering keeps the file's own
``sample_idx`` equal to that index. The file is written atomically (a temporary file in the
output folder, then ``os.replace``).

``k`` is ``--times``, or the smallest ``k`` with which every (class, difficulty) that has any
box reaches ``--min-gt`` boxes (counted with mmdet3d's own ``clean_data``, i.e. the boxes the
evaluator keeps; a class with no box at some difficulty cannot be helped and is reported).

Usage::

    python tools/misc/repeat_kitti_infos.py data/kitti/kitti_infos_val.pkl \\
        data/kitti/kitti_infos_val_x41.pkl --min-gt 41
    python tools/misc/repeat_kitti_infos.py IN.pkl OUT.pkl --times 10
"""
import argparse
import copy
import math
import os
import os.path as osp
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import mmengine

# class order of mmdet3d's kitti_eval / clean_data
EVAL_CLASSES = ('Car', 'Pedestrian', 'Cyclist')
DIFFICULTIES = ('easy', 'moderate', 'hard')


def load_infos(path: str) -> dict:
    """Load a v2 info file (``{'metainfo': ..., 'data_list': [...]}``).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If it is not an mmdet3d v2 info file or has no frames.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'repeat_kitti_infos: no info file {path}')
    infos = mmengine.load(path)
    if not isinstance(infos, dict) or not isinstance(infos.get('data_list'), list) \
            or 'metainfo' not in infos:
        raise ValueError(f'repeat_kitti_infos: {path} is not an mmdet3d v2 info file '
                         "(a dict with 'metainfo' and 'data_list'; convert v1 infos with "
                         'tools/create_data.py kitti)')
    if not infos['data_list']:
        raise ValueError(f'repeat_kitti_infos: {path} has no frames')
    return infos


def count_gt(infos: dict, classes: Sequence[str] = EVAL_CLASSES) -> Dict[Tuple[str, str], int]:
    """Boxes per (class, difficulty) that mmdet3d's KITTI evaluation counts.

    Uses the stock ``KittiMetric.convert_annos_to_kitti_annos`` and ``clean_data`` on a copy.

    Raises:
        ValueError: If a class is not one of the KITTI evaluation classes.
    """
    from mmdet3d.evaluation.functional.kitti_utils.eval import clean_data
    from mmdet3d.evaluation.metrics import KittiMetric
    unknown = [c for c in classes if c not in EVAL_CLASSES]
    if unknown:
        raise ValueError(f'repeat_kitti_infos: classes {unknown} are not evaluated by the KITTI '
                         f'protocol (one of {list(EVAL_CLASSES)})')
    annos = [a['kitti_annos'] for a in
             KittiMetric(ann_file='').convert_annos_to_kitti_annos(copy.deepcopy(infos))]
    no_dets = dict(name=[])
    counts = {}
    for cls in classes:
        for level, difficulty in enumerate(DIFFICULTIES):
            counts[(cls, difficulty)] = sum(
                clean_data(anno, no_dets, EVAL_CLASSES.index(cls), level)[0] for anno in annos)
    return counts


def repeat_factor(counts: Dict[Tuple[str, str], int], min_gt: int) -> int:
    """Smallest ``k >= 1`` with ``k * n >= min_gt`` for every non-zero count ``n``."""
    return max([1] + [math.ceil(min_gt / n) for n in counts.values() if n > 0])


def repeat_infos(infos: dict, times: int) -> dict:
    """The infos with ``data_list`` repeated ``times`` times and ``sample_idx`` = 0..N-1.

    Raises:
        ValueError: If ``times < 1``.
    """
    if times < 1:
        raise ValueError(f'repeat_kitti_infos: times must be >= 1, got {times}')
    data_list = [copy.deepcopy(info) for _ in range(times) for info in infos['data_list']]
    for idx, info in enumerate(data_list):
        info['sample_idx'] = idx
    return dict(metainfo=copy.deepcopy(infos['metainfo']), data_list=data_list)


def dump_atomic(obj, path: str) -> None:
    """Write ``obj`` as a pickle to ``path`` through a temporary file and ``os.replace``."""
    out_dir = osp.dirname(osp.abspath(path))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + osp.basename(path) + '.', suffix='.tmp', dir=out_dir)
    try:
        with os.fdopen(fd, 'wb') as f:
            mmengine.dump(obj, f, file_format='pkl')
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='mmdet3d v2 KITTI info pkl')
    parser.add_argument('dst', help='output pkl (must differ from src)')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--times', type=int, help='repeat every frame this many times')
    group.add_argument('--min-gt', type=int, default=41,
                       help='repeat until every (class, difficulty) with boxes has this many '
                       '(default 41: AP_R40 of perfect detections reaches 100)')
    parser.add_argument('--classes', nargs='+', default=list(EVAL_CLASSES),
                        help='classes counted for --min-gt')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    """Write the repeated infos; returns ``dict(times, num_frames, counts_before, counts_after)``.

    Raises:
        ValueError: If ``dst`` is ``src``, or on bad infos / arguments (see the helpers).
    """
    args = parse_args(argv)
    if osp.abspath(args.src) == osp.abspath(args.dst):
        raise ValueError(f'repeat_kitti_infos: the output {args.dst} would overwrite the input')
    infos = load_infos(args.src)
    counts = count_gt(infos, args.classes)
    times = args.times if args.times is not None else repeat_factor(counts, args.min_gt)
    out = repeat_infos(infos, times)
    dump_atomic(out, args.dst)
    after = {key: n * times for key, n in counts.items()}
    for (cls, difficulty), n in counts.items():
        note = '  (no box: AP stays 0)' if n == 0 else ''
        print(f'{cls:<10} {difficulty:<8} {n:>6} -> {n * times:>6} boxes{note}')
    print(f'{args.src}: {len(infos["data_list"])} frames x {times} -> '
          f'{len(out["data_list"])} frames written to {args.dst}')
    return dict(times=times, num_frames=len(out['data_list']),
                counts_before={f'{c}/{d}': n for (c, d), n in counts.items()},
                counts_after={f'{c}/{d}': n for (c, d), n in after.items()})


if __name__ == '__main__':
    main()
