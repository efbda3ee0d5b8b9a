"""Fit DAMF's normal-feature Gaussian mixture, choosing the number of components by BIC.

Paper: "Distribution-Aligned Multimodal Fusion for Robust Object Detection" (DAMF), CVPR 2026:
the prior ``P_normal`` is a Gaussian mixture on the frozen encoder's CLS features of normal RGB
images, its number of components chosen by the Bayesian information criterion (the paper
reports K = 8). Fitting uses scikit-learn's ``GaussianMixture(covariance_type='diag',
init_params='k-means++', max_iter=100, tol=1e-4, random_state=seed)`` for every K of the range;
the K of lowest BIC wins (ties: the smaller K).

Choice stated for the README: K is capped at the number of samples N (a mixture cannot have
more components than points; scikit-learn refuses it); with the cap a warning is logged and the
cap recorded. Shape shorthand: N samples, d feature dimension.
"""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log

__all__ = ['fit_gmm_by_bic']


def fit_gmm_by_bic(features: np.ndarray,
                   k_range: Sequence[int] = (2, 16),
                   seed: int = 0,
                   max_iter: int = 100,
                   tol: float = 1e-4,
                   logger: Optional[str] = 'current') -> Tuple[object, Dict[int, float], dict]:
    """Fit one diagonal-covariance mixture per K and keep the one of lowest BIC.

    Args:
        features (np.ndarray): (N, d) features (CLS tokens of normal samples).
        k_range (Sequence[int]): Inclusive range ``(k_min, k_max)`` of component counts.
        seed (int): ``random_state`` of every fit (k-means++ initialisation).
        max_iter (int): EM iterations per fit. Defaults to 100.
        tol (float): EM convergence threshold on the lower bound. Defaults to 1e-4.
        logger (str, optional): mmengine logger for the per-K lines (``print_log``).

    Returns:
        tuple: ``(gmm, bic, info)``: the fitted ``sklearn.mixture.GaussianMixture`` of the
        chosen K; ``{K: BIC}`` for every K tried; ``info`` dict with ``chosen_k``, ``k_range``
        (as asked), ``k_max_used`` (after the cap), ``capped`` (bool), ``converged``
        ``{K: bool}``, ``num_samples`` (N) and ``feature_dim`` (d).

    Raises:
        ValueError: If ``features`` is not a finite 2-D array with at least 2 rows, or the
            range is empty or starts below 1.
    """
    from sklearn.mixture import GaussianMixture

    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f'need (N, d) features with N >= 2 to fit a mixture, got shape '
                         f'{features.shape}')
    if not np.isfinite(features).all():
        raise ValueError('features contain NaN or inf')
    k_min, k_max = (int(k) for k in k_range)
    if k_min < 1 or k_max < k_min:
        raise ValueError(f'k_range must be (k_min, k_max) with 1 <= k_min <= k_max, got '
                         f'{tuple(k_range)}')
    num_samples = features.shape[0]
    k_max_used = min(k_max, num_samples)
    capped = k_max_used < k_max
    if capped:
        print_log(f'only {num_samples} samples: K capped at {k_max_used} (asked up to {k_max})',
                  logger=logger, level=30)
    if k_min > k_max_used:
        raise ValueError(f'k_min={k_min} exceeds the number of samples {num_samples}')

    bic, converged, best = {}, {}, None
    for k in range(k_min, k_max_used + 1):
        gmm = GaussianMixture(n_components=k, covariance_type='diag', init_params='k-means++',
                              max_iter=max_iter, tol=tol, random_state=seed)
        gmm.fit(features)
        bic[k] = float(gmm.bic(features))
        converged[k] = bool(gmm.converged_)
        print_log(f'GMM K={k}: BIC={bic[k]:.2f} (converged: {converged[k]}, '
                  f'{gmm.n_iter_} EM iterations)', logger=logger)
        if best is None or bic[k] < bic[best[0]]:
            best = (k, gmm)
    chosen_k, gmm = best
    print_log(f'chosen K={chosen_k} (lowest BIC {bic[chosen_k]:.2f} over K={k_min}..'
              f'{k_max_used})', logger=logger)
    info = dict(chosen_k=chosen_k, k_range=[k_min, k_max], k_max_used=k_max_used,
                capped=capped, converged=converged, num_samples=num_samples,
                feature_dim=int(features.shape[1]))
    return gmm, bic, info
