"""Losses of mmfusion: DAMF's Gaussian-mixture prior and its negative log-likelihood."""
from .gmm_fitting import fit_gmm_by_bic
from .gmm_nll_loss import GaussianMixturePrior, GMMNegLogLikelihoodLoss

__all__ = ['GaussianMixturePrior', 'GMMNegLogLikelihoodLoss', 'fit_gmm_by_bic']
