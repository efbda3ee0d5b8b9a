"""Print the environment and the op paths mmfusion will use on this machine.

``python -m mmfusion.utils.collect_env`` (also ``tools/misc/collect_env.py``): mmengine's
``collect_env`` (Python, CUDA, compilers, PyTorch, OpenCV, MMEngine), the versions of the
OpenMMLab hosts and optional kernels, and for each device mmfusion dispatches on (CPU, and CUDA
when present) which implementation runs: mmcv's compiled kernels, spconv's algorithm and the
selective-scan backend. Paste its output into bug reports.
"""
import importlib
from collections import OrderedDict
from typing import Dict

import torch
from mmengine.utils.dl_utils import collect_env as collect_base_env

PACKAGES = ('mmcv', 'mmdet', 'mmdet3d', 'mmseg', 'spconv', 'triton', 'mamba_ssm', 'numpy',
            'mmfusion')


def _version(name: str) -> str:
    try:
        return getattr(importlib.import_module(name), '__version__', 'installed (no version)')
    except Exception as err:  # not installed, or fails to import: say why
        return f'not available ({type(err).__name__}: {err})'.splitlines()[0][:120]


def _mmcv_ops() -> str:
    try:
        from mmcv.ops import get_compiler_version, get_compiling_cuda_version
    except Exception as err:
        return f'not available ({type(err).__name__}: {err})'.splitlines()[0][:120]
    return (f'compiled ops present (compiler {get_compiler_version()}, '
            f'CUDA {get_compiling_cuda_version()})')


def _spconv_algorithm(device: str) -> str:
    if device == 'cpu':
        return 'ConvAlgo.Native (CPU inputs; set per call by mmfusion.det3d)'
    return "the module's own algorithm (spconv default, CUDA kernels)"


def _selective_scan_backend(device: str) -> str:
    try:
        from mmfusion.ops.selective_scan import dispatch
    except ImportError:
        return 'PyTorch scan'
    try:
        return dispatch.backend_for(torch.device(device))
    except Exception as err:
        return f'error ({type(err).__name__}: {err})'


def collect_env() -> Dict[str, str]:
    """Return mmengine's environment entries plus mmfusion's versions and op paths (ordered)."""
    env = OrderedDict(collect_base_env())
    for name in PACKAGES:
        env[name] = _version(name)
    env['mmcv ops'] = _mmcv_ops()
    devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    for device in devices:
        env[f'spconv algorithm ({device})'] = _spconv_algorithm(device)
        env[f'selective scan ({device})'] = _selective_scan_backend(device)
    return env


def main() -> None:
    for name, value in collect_env().items():
        print(f'{name}: {value}')


if __name__ == '__main__':
    main()
