"""DAMF's Gaussian-mixture prior of normal CLS features and its negative log-likelihood loss.

Paper: "Distribution-Aligned Multimodal Fusion for Robust Object Detection" (DAMF), CVPR 2026
(no code released). A Gaussian mixture fitted on the frozen RGB encoder's CLS features of
*normal* RGB images models the normal feature distribution ``P_normal``; stage-2 training
minimises ``-log P_normal(fused CLS token) + 0.5 * L_det`` with only the fusion module
trainable. This file holds the density (:class:`GaussianMixturePrior`) and the loss term
(:class:`GMMNegLogLikelihoodLoss`); ``tools/fit_gmm.py`` fits and writes the mixture.

Shape shorthand: B samples, K mixture components, d feature dimension (the CLS token's
``embed_dims``, 768 for ViT-B).

Density (diagonal covariances, as scikit-learn's ``GaussianMixture(covariance_type='diag')``)::

    log p(x) = logsumexp_k [ log pi_k - 0.5 * ( d log(2 pi) + sum_j log var_kj
                                                 + sum_j (x_j - mu_kj)^2 / var_kj ) ]

evaluated in float64 with the direct difference ``x - mu`` (not scikit-learn's expanded
``x^2 - 2 x mu + mu^2``, which loses digits for large features). Measured against
``GaussianMixture.score_samples`` on real 768-d CLS features (tests): at most 6e-8 absolute on
values of magnitude up to 5.6e5 (the tests require 1e-4).

File format (``GaussianMixturePrior.save`` / ``from_file``, a ``torch.save`` dict readable with
``torch.load(weights_only=True)``): ``format='mmfusion.gmm_prior'``, ``version=1``,
``covariance_type='diag'``, ``weights`` (K,), ``means`` (K, d), ``covariances`` (K, d) float64
tensors, ``n_components`` (K), ``feature_dim`` (d), plus whatever metadata the writer adds
(``tools/fit_gmm.py`` adds the BIC per K, the normal-sample selection statistics, the config
and checkpoint paths).

Choices not fixed by the paper (stated here for the README):

- The mixture is held as non-trainable, *persistent* buffers, so a stage-2 checkpoint carries
  the prior it was trained with (loading it overwrites the buffers of a freshly built loss).
- The loss is the per-sample ``-log p(x)`` averaged over the batch (``reduction='mean'``), not
  divided by d; its scale is therefore that of a d-dimensional log-density (it can be
  negative: densities of concentrated features exceed 1).
"""
import os
import os.path as osp
from typing import Optional

import torch
from mmdet.models.losses.utils import weight_reduce_loss
from mmdet.registry import MODELS
from torch import Tensor, nn

__all__ = ['GaussianMixturePrior', 'GMMNegLogLikelihoodLoss']

FILE_FORMAT = 'mmfusion.gmm_prior'
FILE_VERSION = 1
_LOG_2PI = 1.8378770664093453  # log(2 * pi)


class GaussianMixturePrior(nn.Module):
    """Gaussian mixture with diagonal covariances; differentiable ``log p(x)``.

    Args:
        weights (Tensor | array): Mixing weights pi, shape (K,), positive, summing to 1.
        means (Tensor | array): Component means mu, shape (K, d).
        covariances (Tensor | array): Diagonal covariances var, shape (K, d), positive
            (scikit-learn's ``covariances_`` for ``covariance_type='diag'``, which already
            include its ``reg_covar``).
        source (str, optional): Where the mixture came from (a file path); named in error
            messages. Defaults to None.

    Buffers (float64, persistent): ``weights`` (K,), ``means`` (K, d), ``covariances`` (K, d).

    Raises:
        ValueError: If the shapes disagree, a weight or covariance is not positive or not
            finite, or the weights do not sum to 1 (within 1e-6); the message names ``source``.
    """

    def __init__(self, weights, means, covariances, source: Optional[str] = None) -> None:
        super().__init__()
        self.source = source
        where = f' ({source})' if source else ''
        weights, means, covariances = (torch.as_tensor(v, dtype=torch.float64).detach().clone()
                                       for v in (weights, means, covariances))
        if weights.dim() != 1 or means.dim() != 2 or covariances.shape != means.shape \
                or means.shape[0] != weights.shape[0]:
            raise ValueError(
                f'Gaussian mixture{where}: expected weights (K,), means (K, d) and diagonal '
                f'covariances (K, d); got {tuple(weights.shape)}, {tuple(means.shape)}, '
                f'{tuple(covariances.shape)}')
        if weights.numel() == 0 or means.shape[1] == 0:
            raise ValueError(f'Gaussian mixture{where} is empty: K={weights.numel()}, '
                             f'd={means.shape[1]}')
        for name, value in (('weights', weights), ('means', means),
                            ('covariances', covariances)):
            if not torch.isfinite(value).all():
                raise ValueError(f'Gaussian mixture{where}: {name} contain NaN or inf')
        if (weights <= 0).any() or (covariances <= 0).any():
            raise ValueError(f'Gaussian mixture{where}: weights and covariances must be '
                             'positive')
        if abs(float(weights.sum()) - 1.0) > 1e-6:
            raise ValueError(f'Gaussian mixture{where}: weights sum to {float(weights.sum())}, '
                             'not 1')
        self.register_buffer('weights', weights)
        self.register_buffer('means', means)
        self.register_buffer('covariances', covariances)

    @property
    def num_components(self) -> int:
        """K, the number of mixture components."""
        return self.weights.shape[0]

    @property
    def feature_dim(self) -> int:
        """d, the feature dimension."""
        return self.means.shape[1]

    def log_prob(self, x: Tensor) -> Tensor:
        """Log-density of each feature vector under the mixture.

        Args:
            x (Tensor): Features of shape (B, d) (any leading shape (..., d) works), any
                floating dtype and device; gradients flow back to ``x``.

        Returns:
            Tensor: ``log p(x)`` of shape (B,) (the leading shape of ``x``), float64.

        Raises:
            ValueError: If the last dimension of ``x`` is not d (the message names the
                mixture's file).
        """
        if x.shape[-1] != self.feature_dim:
            where = f'the Gaussian mixture in {self.source}' if self.source \
                else 'the Gaussian mixture'
            raise ValueError(
                f'features of shape {tuple(x.shape)} have dimension {x.shape[-1]}, but '
                f'{where} was fitted on {self.feature_dim}-dimensional features; fit it on '
                'the CLS features of the same encoder (tools/fit_gmm.py)')
        means = self.means.double()
        covariances = self.covariances.double()
        diff = x.double().unsqueeze(-2) - means  # (..., K, d)
        mahalanobis = (diff * diff / covariances).sum(-1)  # (..., K)
        log_norm = self.feature_dim * _LOG_2PI + covariances.log().sum(-1)  # (K,)
        log_components = -0.5 * (log_norm + mahalanobis)
        return torch.logsumexp(log_components + self.weights.double().log(), dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """Same as :meth:`log_prob`."""
        return self.log_prob(x)

    @classmethod
    def from_sklearn(cls, gmm, source: Optional[str] = None) -> 'GaussianMixturePrior':
        """Take the parameters of a fitted ``sklearn.mixture.GaussianMixture``.

        Args:
            gmm: A fitted ``GaussianMixture`` with ``covariance_type='diag'``.
            source (str, optional): Named in error messages.

        Raises:
            ValueError: If ``gmm`` is not fitted or its covariance type is not ``'diag'``.
        """
        if getattr(gmm, 'covariance_type', None) != 'diag':
            raise ValueError('GaussianMixturePrior holds diagonal covariances; fit the '
                             "GaussianMixture with covariance_type='diag', got "
                             f'{getattr(gmm, "covariance_type", None)!r}')
        if not hasattr(gmm, 'means_'):
            raise ValueError('the GaussianMixture is not fitted (no means_)')
        return cls(gmm.weights_, gmm.means_, gmm.covariances_, source=source)

    @classmethod
    def from_file(cls, path: str) -> 'GaussianMixturePrior':
        """Read a mixture written by :meth:`save` (e.g. by ``tools/fit_gmm.py``).

        Args:
            path (str): The ``.pth`` file.

        Raises:
            FileNotFoundError: If ``path`` is not a file.
            ValueError: If it cannot be read by ``torch.load(weights_only=True)``, is not a
                dict with ``weights``/``means``/``covariances``, has a covariance type other
                than ``'diag'``, or holds an invalid mixture (see the class doc). Every
                message names ``path``.
        """
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'Gaussian mixture file {path} not found; write it with tools/fit_gmm.py '
                'CONFIG CHECKPOINT --out <file>')
        try:
            data = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as err:  # pickle, zip and weights-only errors alike
            raise ValueError(f'{path} is not a Gaussian mixture file readable by torch.load '
                             f'(weights_only=True): {err}') from err
        if not isinstance(data, dict):
            raise ValueError(f'{path}: expected a dict with weights, means and covariances, '
                             f'got {type(data).__name__}')
        missing = [k for k in ('weights', 'means', 'covariances') if k not in data]
        if missing:
            raise ValueError(f'{path}: not a Gaussian mixture file (missing {missing}; keys: '
                             f'{sorted(data)})')
        covariance_type = data.get('covariance_type', 'diag')
        if covariance_type != 'diag':
            raise ValueError(f'{path}: covariance_type {covariance_type!r}; only diagonal '
                             "covariances ('diag') are supported")
        return cls(data['weights'], data['means'], data['covariances'], source=path)

    def save(self, path: str, **metadata) -> None:
        """Write the mixture (and ``metadata``) in the format :meth:`from_file` reads.

        Args:
            path (str): Output file (parent folders are created).
            **metadata: Extra entries; use plain Python types, str and tensors so the file
                stays readable with ``torch.load(weights_only=True)``.

        Raises:
            ValueError: If ``metadata`` uses a reserved key.
        """
        record = dict(format=FILE_FORMAT, version=FILE_VERSION, covariance_type='diag',
                      weights=self.weights.detach().cpu().double(),
                      means=self.means.detach().cpu().double(),
                      covariances=self.covariances.detach().cpu().double(),
                      n_components=self.num_components, feature_dim=self.feature_dim)
        clash = sorted(set(record) & set(metadata))
        if clash:
            raise ValueError(f'metadata keys {clash} are reserved by the file format')
        record.update(metadata)
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        torch.save(record, path)

    def extra_repr(self) -> str:
        return f'num_components={self.num_components}, feature_dim={self.feature_dim}, ' \
               f'source={self.source!r}'


@MODELS.register_module()
class GMMNegLogLikelihoodLoss(nn.Module):
    """DAMF's distribution-alignment loss: ``-log P_normal(x)`` under a fitted mixture.

    Args:
        gmm_file (str | None): Mixture file written by ``tools/fit_gmm.py``. ``None`` builds
            the loss without a prior (only so a model can be built to *fit* the prior:
            ``tools/fit_gmm.py`` does this); calling it then raises. A stage-2 checkpoint
            carries the prior in its state dict (buffers ``prior.weights``, ``prior.means``,
            ``prior.covariances``).
        loss_weight (float): Factor on the loss. Defaults to 1.0 (the paper weights the
            detection loss by 0.5 and this term by 1).
        reduction (str): ``'mean'`` (paper), ``'sum'`` or ``'none'``. Defaults to ``'mean'``.

    Raises:
        FileNotFoundError, ValueError: From :meth:`GaussianMixturePrior.from_file`, naming
            ``gmm_file``, if it is missing or malformed.
        ValueError: If ``reduction`` is not one of the three.
    """

    def __init__(self, gmm_file: Optional[str], loss_weight: float = 1.0,
                 reduction: str = 'mean') -> None:
        super().__init__()
        if reduction not in ('mean', 'sum', 'none'):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.gmm_file = gmm_file
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.prior = None if gmm_file is None else GaussianMixturePrior.from_file(gmm_file)

    def forward(self, x: Tensor, weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Negative log-likelihood of the features under the prior.

        Args:
            x (Tensor): Features (fused CLS tokens) of shape (B, d).
            weight (Tensor, optional): Per-sample weights, shape (B,).
            avg_factor (float, optional): Divide the sum by this instead of B (mean only).
            reduction_override (str, optional): Overrides ``reduction``.

        Returns:
            Tensor: Scalar (or (B,) for ``'none'``), ``loss_weight * -log p(x)`` reduced, in
            ``x``'s dtype promoted to at least float32.

        Raises:
            RuntimeError: If the loss was built with ``gmm_file=None``.
            ValueError: If d differs from the prior's (see
                :meth:`GaussianMixturePrior.log_prob`).
        """
        if self.prior is None:
            raise RuntimeError(
                'GMMNegLogLikelihoodLoss was built with gmm_file=None: fit the prior with '
                'tools/fit_gmm.py and set gmm_file in the config')
        reduction = reduction_override or self.reduction
        nll = -self.prior.log_prob(x)
        nll = nll.to(torch.promote_types(x.dtype, torch.float32))
        if weight is not None:
            weight = weight.to(nll.dtype)
        return self.loss_weight * weight_reduce_loss(nll, weight, reduction, avg_factor)

    def extra_repr(self) -> str:
        return f'gmm_file={self.gmm_file!r}, loss_weight={self.loss_weight}, ' \
               f'reduction={self.reduction!r}'
