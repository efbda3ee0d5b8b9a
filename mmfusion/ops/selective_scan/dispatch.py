"""Backend choice of :func:`selective_scan`: mamba-ssm's CUDA kernel, the Triton kernel or the
PyTorch scan (shapes: see :mod:`mmfusion.ops.selective_scan.shapes`).

Order for CUDA tensors: mamba-ssm's kernel when its compiled extension ``selective_scan_cuda``
imports (``mamba_ssm.ops.selective_scan_interface`` itself imports without it since mamba-ssm
is installed without its kernels by default, and would fail at the first call), else the Triton
kernel when ``triton`` imports, else the PyTorch scan; every other device runs the PyTorch scan.
The choice is made once per device and logged once through mmengine's current logger. It is
overridden by the ``backend`` argument or, without one, by the environment variable
``MMFUSION_SELECTIVE_SCAN`` (``torch``, ``triton`` or ``mamba``). While a model is exported to
ONNX (``torch.onnx.is_in_onnx_export()``), :func:`selective_scan_export` runs instead.
Nothing here imports triton or mamba-ssm before a CUDA call (or an explicit request) needs them.
"""
import functools
import os
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import Tensor

from .export_scan import selective_scan_export
from .shapes import ScanOutput, check_inputs
from .torch_scan import selective_scan_torch

__all__ = ['selective_scan', 'resolve_backend', 'BACKENDS', 'ENV_VAR']

BACKENDS = ('torch', 'triton', 'mamba')
ENV_VAR = 'MMFUSION_SELECTIVE_SCAN'
# Automatic choice per device, keyed by (device type, index).
_CHOSEN: Dict[Tuple[str, int], str] = {}
_LOGGED = set()


def selective_scan(u: Tensor,
                   delta: Tensor,
                   A: Tensor,
                   B: Tensor,
                   C: Tensor,
                   D: Optional[Tensor] = None,
                   z: Optional[Tensor] = None,
                   delta_bias: Optional[Tensor] = None,
                   delta_softplus: bool = False,
                   return_last_state: bool = False,
                   backend: Optional[str] = None) -> ScanOutput:
    """Selective scan (Mamba S6) on the best available backend.

    Args:
        u (Tensor): Input, (B, D, L).
        delta (Tensor): Step sizes before bias/softplus, (B, D, L).
        A (Tensor): Real state matrix (diagonal per channel), (D, N); Mamba uses A < 0.
        B (Tensor): Input projection: (D, N) time-invariant, (B, N, L), or grouped (B, G, N, L).
        C (Tensor): Output projection, same layouts as ``B`` (independently of it).
        D (Tensor, optional): Skip connection weight, (D,).
        z (Tensor, optional): Gate, (B, D, L); the output is multiplied by ``silu(z)``.
        delta_bias (Tensor, optional): Added to ``delta`` (before the softplus), (D,).
        delta_softplus (bool): Apply softplus to ``delta + delta_bias``. Defaults to False.
        return_last_state (bool): Also return the state after the last step. Defaults to False.
        backend (str, optional): ``'torch'``, ``'triton'`` or ``'mamba'``; default: the
            environment variable ``MMFUSION_SELECTIVE_SCAN``, else the automatic choice (module
            docstring).

    Returns:
        Tensor | tuple[Tensor, Tensor]: The output (B, D, L) in ``u.dtype``; with
        ``return_last_state`` also the last state (B, D, N) in fp32 (as mamba-ssm returns it).

    Raises:
        ValueError: If a shape is inconsistent (the message names the argument and its shape),
            or the backend name is unknown.
        RuntimeError: If the requested backend cannot run these tensors.
        NotImplementedError: If ``A`` (or another input) is complex.
    """
    check_inputs(u, delta, A, B, C, D, z, delta_bias)
    if torch.onnx.is_in_onnx_export():
        return selective_scan_export(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                     return_last_state)
    name = resolve_backend(u, backend)
    if name == 'mamba':
        return _mamba_selective_scan_fn()(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias,
                                          delta_softplus=delta_softplus,
                                          return_last_state=return_last_state)
    if name == 'triton':
        from .triton_scan import selective_scan_triton
        return selective_scan_triton(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                     return_last_state)
    return selective_scan_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                return_last_state)


def resolve_backend(u: Tensor, backend: Optional[str] = None) -> str:
    """The backend that :func:`selective_scan` uses for ``u`` (see the module docstring).

    Args:
        u (Tensor): The scan input; its device decides.
        backend (str, optional): Explicit choice; overrides ``MMFUSION_SELECTIVE_SCAN``.

    Returns:
        str: ``'torch'``, ``'triton'`` or ``'mamba'``.

    Raises:
        ValueError: If the name (argument or environment variable) is not a backend.
        RuntimeError: If the requested backend is not installed or cannot run on ``u``'s device.
    """
    source = 'argument backend'
    if backend is None:
        backend, source = os.environ.get(ENV_VAR) or None, f'environment variable {ENV_VAR}'
    key = ('cuda' if u.is_cuda else u.device.type, u.get_device() if u.is_cuda else -1)
    if backend is None:
        if key not in _CHOSEN:
            _CHOSEN[key] = _automatic(u.is_cuda)
        backend, source = _CHOSEN[key], 'automatic'
    elif backend not in BACKENDS:
        raise ValueError(f'selective_scan: unknown backend {backend!r} from {source}; expected '
                         f'one of {", ".join(BACKENDS)}')
    else:
        _check_usable(backend, u.is_cuda, source)
    if (key, backend, source) not in _LOGGED:
        _LOGGED.add((key, backend, source))
        from mmengine.logging import print_log
        print_log(f'selective_scan on {key[0]} tensors: {backend} backend ({source})',
                  logger='current')
    return backend


def _automatic(is_cuda: bool) -> str:
    if is_cuda and _mamba_selective_scan_fn() is not None:
        return 'mamba'
    if is_cuda and _triton_available():
        return 'triton'
    return 'torch'


def _check_usable(backend: str, is_cuda: bool, source: str) -> None:
    """Raise RuntimeError if an explicitly requested backend cannot run."""
    if backend == 'mamba':
        if not is_cuda:
            raise RuntimeError(f'selective_scan: backend mamba (from {source}) needs CUDA tensors')
        if _mamba_selective_scan_fn() is None:
            raise RuntimeError(
                f'selective_scan: backend mamba (from {source}) needs mamba-ssm with its '
                'compiled selective_scan_cuda extension (install with MAMBA_KEEP_CUDA_BUILD=TRUE)')
    elif backend == 'triton':
        if not _triton_available():
            raise RuntimeError(f'selective_scan: backend triton (from {source}) needs the triton '
                               'package')
        if not is_cuda and os.environ.get('TRITON_INTERPRET') != '1':
            raise RuntimeError(f'selective_scan: backend triton (from {source}) needs CUDA '
                               'tensors (or TRITON_INTERPRET=1 set before triton is imported)')


@functools.lru_cache(maxsize=None)
def _mamba_selective_scan_fn() -> Optional[Callable]:
    """mamba-ssm's ``selective_scan_fn`` if its compiled kernel imports, else None (tried
    once)."""
    try:
        import selective_scan_cuda  # noqa: F401  (mamba-ssm's compiled extension)
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # ImportError, or OSError/RuntimeError from a compiled extension
        return None
    return selective_scan_fn


@functools.lru_cache(maxsize=None)
def _triton_available() -> bool:
    """Whether ``triton`` imports (tried once)."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # ImportError, or a broken installation
        return False
    return True


def reset_backend_choice() -> None:
    """Forget the per-device choices and the import results (tests; after installing a
    backend in a running process)."""
    _CHOSEN.clear()
    _LOGGED.clear()
    _mamba_selective_scan_fn.cache_clear()
    _triton_available.cache_clear()
