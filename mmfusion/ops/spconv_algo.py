"""Per-call choice of the spconv 2.x algorithm by device: ``ConvAlgo.Native`` on CPU.

spconv's CUDA wheels (spconv-cu120 2.3.6) import on machines without a GPU, but their default
algorithm for kernels of up to 32 taps, ``ConvAlgo.MaskImplicitGemm``, exists only on CUDA; a
forward pass on CPU tensors then fails. ``ConvAlgo.Native`` (gather - GEMM - scatter) runs on
both devices. This module wraps the ``forward`` of spconv's convolution and max-pool modules so
that a call whose input features are on CPU runs with ``Native`` and a CUDA call keeps the
module's own algorithm. Nothing is stored: the module's ``algo`` is restored after the call,
so a model built on CPU and moved to CUDA (or the reverse) uses the fast kernel there.

Why this is safe: spconv 2.x stores every weight as KRSC whatever the algorithm
(``spconv.constants.ALL_WEIGHT_IS_KRSC``), so the same parameters serve both algorithms; all
layers of a CPU forward use ``Native``, so layers sharing an ``indice_key`` agree on the
algorithm, as spconv requires. ``SparseAvgPool`` is left alone (it supports only
MaskImplicitGemm).
"""
import functools

_PATCHED_ATTR = '_mmfusion_native_on_cpu'


def _native_on_cpu(forward):
    from spconv.core import ConvAlgo

    @functools.wraps(forward)
    def wrapped(self, input, *args, **kwargs):
        if input.features.is_cuda or self.algo == ConvAlgo.Native:
            return forward(self, input, *args, **kwargs)
        saved = self.algo
        self.algo = ConvAlgo.Native
        try:
            return forward(self, input, *args, **kwargs)
        finally:
            self.algo = saved

    setattr(wrapped, _PATCHED_ATTR, True)
    return wrapped


def use_native_spconv_on_cpu():
    """Install the per-call algorithm choice on spconv's modules (idempotent).

    Returns:
        bool: False when spconv 2.x is not installed (nothing to do), else True.
    """
    try:
        from spconv.pytorch.conv import SparseConvolution
        from spconv.pytorch.pool import SparseMaxPool
    except ImportError:
        return False
    for cls in (SparseConvolution, SparseMaxPool):
        if not getattr(cls.forward, _PATCHED_ATTR, False):
            cls.forward = _native_on_cpu(cls.forward)
    return True
