"""Device-dispatching ``dynamic_scatter``: reduce point features into the voxels they fall in.

Why this file exists
--------------------
mmcv 2.1.0 implements ``dynamic_point_to_voxel_forward/backward`` (the kernel behind
``mmcv.ops.dynamic_scatter`` and the ``mmcv.ops.DynamicScatter`` module) for CUDA (and MLU)
only; on a CPU tensor the op fails inside mmcv's extension. mmdet3d's ``DynamicVFE``,
``DynamicSimpleVFE`` and ``DynamicPillarFeatureNet`` call it, so dynamic-voxelisation models
(MVX-Net, dynamic PointPillars/SECOND) cannot run on CPU with stock mmcv. :func:`dynamic_scatter`
is a drop-in replacement for ``mmcv.ops.scatter_points.dynamic_scatter``: on CUDA it calls the
original mmcv op (captured when this module is imported, so rebinding mmcv's name to this function
does not recurse); on every other device it runs the pure-PyTorch implementation below.

Semantics (matched to mmcv 2.1.0 ``mmcv/ops/csrc/pytorch/cuda/scatter_points_cuda.cu`` and
``mmcv/ops/csrc/common/cuda/scatter_points_cuda_kernel.cuh``)
------------------------------------------------------------------------------------------------
Shapes: N points, C feature channels, D coordinate dims (3 for ``(z, y, x)``, 4 with a batch
column), M voxels.

- ``feats`` (N, C) floating point, ``coors`` (N, D) integer (int32 in mmcv/mmdet3d).
- A point whose coordinate row contains any negative entry (mmcv's "outside the range" marker
  ``-1``) is dropped.
- The voxels are the distinct remaining coordinate rows, ordered as
  ``torch.unique(coors, dim=0, sorted=True)`` orders them, i.e. lexicographically ascending by
  row (first column slowest). mmcv's CUDA launcher computes exactly this ``unique_dim`` (after
  setting every row with a negative entry to all ``-1``, which then sorts first and is removed).
- ``voxel_coors`` (M, D) has the dtype of ``coors``; ``voxel_feats`` (M, C) the dtype of
  ``feats``.
- ``'sum'``: sum of the voxel's point features; ``'mean'``: that sum divided by the voxel's
  point count; ``'max'``: channel-wise maximum.
- Gradients: ``'sum'`` passes the voxel gradient to every point of the voxel, ``'mean'`` passes
  it divided by the point count (as mmcv's ``add_reduce_traceback_grad_kernel``). ``'max'``
  routes each channel's voxel gradient to ONE point: among the points whose feature equals the
  maximum, the one with the smallest index in the input, exactly as mmcv's
  ``max_reduce_traceback_scatter_idx_kernel`` (``atomicMin`` over the point index) does. This
  is implemented by gathering the voxel maximum from that point, so autograd reproduces it;
  a plain ``scatter_reduce(..., 'amax')`` would instead split the gradient evenly among tied
  points. Dropped points get zero gradient. ``voxel_coors`` is not differentiable.
- Empty input (N == 0) returns ``feats.clone()`` and ``coors.clone()`` (shapes (0, C) and
  (0, D)), as mmcv does; if every point is dropped the result is ``(0, C)`` / ``(0, D)``.
- Numerics: ``'sum'``/``'mean'`` accumulate in a different order than the CUDA atomics, so
  results can differ from mmcv's in the last bits (mmcv's own docstring quotes ~5e-7).

Errors: ``ValueError`` for an unknown ``reduce_type``, ``feats``/``coors`` that are not 2-D or
disagree in N, non-floating ``feats`` or non-integer ``coors``; ``RuntimeError`` for CUDA input
when mmcv's compiled op could not be imported.
"""
from typing import Tuple

import torch
from torch import Tensor

__all__ = ['dynamic_scatter']

_REDUCE_TYPES = ('sum', 'mean', 'max')

# The original mmcv op, captured at import time (None if mmcv or its compiled ``_ext`` module
# cannot be imported). ``_DynamicScatter.apply`` is not among the names that
# ``mmfusion.ops.cpu_fallbacks`` rebinds (it rebinds ``mmcv.ops.scatter_points.dynamic_scatter``),
# so calling it never comes back here.
try:
    from mmcv.ops.scatter_points import _DynamicScatter as _MMCVDynamicScatter
    _MMCV_DYNAMIC_SCATTER = _MMCVDynamicScatter.apply
    _MMCV_IMPORT_ERROR = None
except Exception as err:  # ImportError, or an OSError/RuntimeError while loading _ext
    _MMCV_DYNAMIC_SCATTER = None
    _MMCV_IMPORT_ERROR = err


def _check_inputs(feats: Tensor, coors: Tensor, reduce_type: str) -> None:
    if reduce_type not in _REDUCE_TYPES:
        raise ValueError(f'dynamic_scatter: reduce_type must be one of {_REDUCE_TYPES}, '
                         f'got {reduce_type!r}')
    if not isinstance(feats, Tensor) or not isinstance(coors, Tensor):
        raise ValueError('dynamic_scatter: feats and coors must be torch.Tensor, got '
                         f'{type(feats).__name__} and {type(coors).__name__}')
    if feats.dim() != 2 or coors.dim() != 2:
        raise ValueError('dynamic_scatter: expected feats (N, C) and coors (N, D), got shapes '
                         f'{tuple(feats.shape)} and {tuple(coors.shape)}')
    if feats.size(0) != coors.size(0):
        raise ValueError('dynamic_scatter: feats and coors disagree in the number of points: '
                         f'{feats.size(0)} vs {coors.size(0)}')
    if not feats.is_floating_point():
        raise ValueError(f'dynamic_scatter: feats must be floating point, got {feats.dtype}')
    if coors.is_floating_point() or coors.is_complex() or coors.dtype == torch.bool:
        raise ValueError(f'dynamic_scatter: coors must be an integer tensor, got {coors.dtype}')
    if feats.device != coors.device:
        raise ValueError('dynamic_scatter: feats and coors are on different devices: '
                         f'{feats.device} vs {coors.device}')


def _dynamic_scatter_torch(feats: Tensor, coors: Tensor,
                           reduce_type: str) -> Tuple[Tensor, Tensor]:
    """Pure-PyTorch implementation (any device); see the module docstring for semantics."""
    num_points, num_channels = feats.shape
    if num_points == 0:
        return feats.clone(), coors.clone()

    valid = (coors >= 0).all(dim=1)
    if not bool(valid.all()):
        valid_idx = valid.nonzero(as_tuple=True)[0]
        feats = feats.index_select(0, valid_idx)
        coors = coors.index_select(0, valid_idx)
    if coors.size(0) == 0:
        # Every point dropped: ``feats``/``coors`` are now (0, C)/(0, D) selections, still in the
        # autograd graph (the gradient of the input is zero).
        return feats, coors

    voxel_coors, inverse, counts = torch.unique(
        coors, dim=0, sorted=True, return_inverse=True, return_counts=True)
    num_voxels = voxel_coors.size(0)

    if reduce_type in ('sum', 'mean'):
        voxel_feats = feats.new_zeros((num_voxels, num_channels)).index_add(0, inverse, feats)
        if reduce_type == 'mean':
            voxel_feats = voxel_feats / counts.to(feats.dtype).unsqueeze(1)
        return voxel_feats, voxel_coors

    # 'max': find the maximum without autograd, pick per (voxel, channel) the lowest-index point
    # attaining it (mmcv's tie rule), then gather from that point so that the gradient follows.
    with torch.no_grad():
        index = inverse.unsqueeze(1).expand(-1, num_channels)
        detached = feats.detach()
        voxel_max = detached.new_empty((num_voxels, num_channels)).scatter_reduce(
            0, index, detached, reduce='amax', include_self=False)
        point_max = voxel_max.index_select(0, inverse)
        attains = (detached == point_max) | (detached.isnan() & point_max.isnan())
        point_ids = torch.arange(coors.size(0), device=feats.device).unsqueeze(1)
        sentinel = coors.size(0)
        candidates = torch.where(attains, point_ids, torch.full_like(point_ids, sentinel))
        source = torch.full((num_voxels, num_channels), sentinel, dtype=torch.long,
                            device=feats.device).scatter_reduce(
                                0, index, candidates, reduce='amin', include_self=True)
        if bool((source == sentinel).any()):  # cannot happen for finite/NaN input; be safe
            fallback = torch.full((num_voxels, ), sentinel, dtype=torch.long,
                                  device=feats.device).scatter_reduce(
                                      0, inverse, point_ids.squeeze(1), reduce='amin')
            source = torch.where(source == sentinel, fallback.unsqueeze(1), source)
    voxel_feats = feats.gather(0, source)
    return voxel_feats, voxel_coors


def dynamic_scatter(feats: Tensor,
                    coors: Tensor,
                    reduce_type: str = 'max') -> Tuple[Tensor, Tensor]:
    """Reduce the features of points sharing a voxel coordinate (mmcv's ``dynamic_scatter``).

    Args:
        feats (Tensor): (N, C) floating-point point features.
        coors (Tensor): (N, D) integer voxel coordinates of the points (int32 in mmdet3d); a row
            with any negative entry marks a point to drop.
        reduce_type (str): ``'max'`` (default), ``'sum'`` or ``'mean'``.

    Returns:
        tuple[Tensor, Tensor]: ``voxel_feats`` (M, C), dtype of ``feats``, and ``voxel_coors``
        (M, D), dtype of ``coors``, the distinct valid coordinate rows in lexicographically
        ascending order (``torch.unique(..., dim=0, sorted=True)``), as mmcv's CUDA op returns.

    Gradient of ``'max'`` on ties: each channel's gradient goes to the single lowest-index point
    attaining the maximum, as in mmcv's CUDA kernel (``torch.scatter_reduce`` would split it
    evenly among the tied points; this function does not).

    Dispatch: CUDA tensors go to the original mmcv op (``RuntimeError`` if mmcv's compiled
    extension could not be imported); all other devices use the PyTorch implementation.

    Raises:
        ValueError: unknown ``reduce_type``, inputs not 2-D, N mismatch, non-floating ``feats``,
            non-integer ``coors``, or inputs on different devices.
        RuntimeError: CUDA input without a usable mmcv extension.
    """
    _check_inputs(feats, coors, reduce_type)
    if feats.device.type == 'cuda':
        if _MMCV_DYNAMIC_SCATTER is None:
            raise RuntimeError(
                'dynamic_scatter: CUDA input needs mmcv\'s compiled op '
                '(mmcv.ops.scatter_points), which failed to import: '
                f'{_MMCV_IMPORT_ERROR!r}. Install mmcv 2.1.0 built with CUDA ops, or pass CPU '
                'tensors.')
        return _MMCV_DYNAMIC_SCATTER(feats, coors, reduce_type)
    return _dynamic_scatter_torch(feats, coors, reduce_type)
