"""Selective scan (Mamba S6) with three backends: mamba-ssm's CUDA kernel, a Triton kernel and a
memory-lean PyTorch scan; see :mod:`.dispatch` for the choice.

Files: ``shapes`` (argument checks, shape shorthand), ``dispatch`` (backend choice,
:func:`selective_scan`), ``torch_scan`` (PyTorch scan and its recomputing backward),
``triton_scan`` (Triton kernels; imported only when used), ``export_scan`` (ONNX export path),
``reference`` (the step-by-step loop the others are tested against).
"""
from .dispatch import BACKENDS, resolve_backend, selective_scan
from .export_scan import selective_scan_export
from .reference import selective_scan_reference
from .torch_scan import selective_scan_torch

__all__ = [
    'BACKENDS', 'resolve_backend', 'selective_scan', 'selective_scan_export',
    'selective_scan_reference', 'selective_scan_torch'
]
