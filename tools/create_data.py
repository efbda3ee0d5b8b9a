"""Convert a dataset from its official release layout into the files mmfusion's configs read.

Usage (the stock mmdet3d flags)::

    python tools/create_data.py kitti  --root-path data/kitti --out-dir data/kitti_mmfusion
    python tools/create_data.py llvip  --root-path data/LLVIP --out-dir data/llvip_infos
    python tools/create_data.py nyudv2 --root-path data/nyudv2_raw --out-dir data/nyudv2
    python tools/create_data.py m3fd   --root-path data/M3FD --out-dir data/m3fd_infos
    python tools/create_data.py flir   --root-path data/FLIR_aligned --out-dir data/flir_infos
    python tools/create_data.py dense  --root-path data/SeeingThroughFog --out-dir data/dense_infos
    (DENSE reads the official calibration json files from <root-path>/calib)
    python tools/create_data.py dronevehicle --root-path data/DroneVehicle \\
        --out-dir data/dronevehicle_infos

Every converter reads the dataset without modifying it, refuses an ``--out-dir`` inside the
dataset folder, validates the whole dataset before writing anything, and commits its outputs
together: the previous output is replaced as a whole or left untouched. Each writes
``<out-dir>/conversion_report.json`` (frames and objects per split and class, objects dropped
and why, points per box for 3D datasets). Bad input (a malformed or non-UTF-8 file, a value out
of range, overlapping splits, ...) and OS errors (permission, not a directory, no space, a name
taken) end with one line naming the path and exit code 2; ``--debug`` (or ``MMFUSION_DEBUG=1``)
shows the traceback.
"""
import argparse
import importlib
import sys

from mmfusion.converters._io import DatasetFormatError
from mmfusion.utils.cli import debug_requested, one_line_error

# dataset -> (module, function) of mmfusion.converters; imported lazily so that a converter's
# heavy dependencies (mmdet3d for KITTI, h5py for NYUDv2) load only when it is used.
CONVERTERS = {
    'dense': ('mmfusion.converters.dense', 'create_dense_infos'),
    'dronevehicle': ('mmfusion.converters.dronevehicle', 'create_dronevehicle_infos'),
    'flir': ('mmfusion.converters.flir', 'create_flir_infos'),
    'kitti': ('mmfusion.converters.kitti', 'create_kitti_infos'),
    'llvip': ('mmfusion.converters.llvip', 'create_llvip_infos'),
    'm3fd': ('mmfusion.converters.m3fd', 'create_m3fd_infos'),
    'nyudv2': ('mmfusion.converters.nyudv2', 'create_nyudv2_infos'),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Data converter arg parser')
    parser.add_argument('dataset', choices=sorted(CONVERTERS), help='name of the dataset')
    parser.add_argument('--root-path', required=True, help='root folder of the dataset release')
    parser.add_argument('--out-dir', required=True, help='output folder (outside the dataset)')
    parser.add_argument('--extra-tag', default=None,
                        help='prefix of the output file names (default: the dataset name)')
    parser.add_argument('--allow-split-overlap', action='store_true',
                        help='nyudv2 extracted layout only: accept frames listed in both train.txt '
                        'and val.txt (an overfitting sample); an error otherwise')
    parser.add_argument('--debug', action='store_true',
                        help='show the full traceback of an error (also with MMFUSION_DEBUG=1)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    module, func = CONVERTERS[args.dataset]
    convert = getattr(importlib.import_module(module), func)
    options = dict(extra_tag=args.extra_tag or args.dataset)
    if args.allow_split_overlap:
        if args.dataset != 'nyudv2':
            print(f'create_data.py {args.dataset}: error: --allow-split-overlap is for nyudv2 '
                  'only', file=sys.stderr)
            return 2
        options['allow_split_overlap'] = True
    try:
        outputs = convert(args.root_path, args.out_dir, **options)
    except (DatasetFormatError, ValueError, OSError) as e:
        if debug_requested(sys.argv[1:] if argv is None else argv):
            raise
        print(f'create_data.py {args.dataset}: error: {one_line_error(e)}', file=sys.stderr)
        return 2
    for name, path in outputs.items():
        print(f'{name}: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
