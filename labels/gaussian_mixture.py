"""PCA projection and diagonal Gaussian mixture as plain arrays, fitted by scikit-learn (numpy in/out).

Both are kept as arrays, not scikit-learn objects, so a fitted model is saved and loaded without pickle and
encodes new descriptors identically on any worker. ``Projection.transform`` equals ``PCA.transform`` and
``DiagonalGmm.posteriors`` equals ``GaussianMixture.predict_proba`` of the fitted objects
(tests/test_fisher.py holds both).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# scikit-learn is imported by the fits that use it: the label workers of other families import this module's
# family too, and scikit-learn costs them ~0.5 s and an OpenMP runtime each.

LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class Projection:
    """Linear projection ``(x - mean) @ components.T * scale`` (PCA, optionally whitened).

    Attributes:
        mean: float64 [D], the data mean.
        components: float64 [d, D], principal axes (rows, unit norm, decreasing variance).
        scale: float64 [d], 1 without whitening, ``1 / sqrt(explained variance)`` with it.
    """

    mean: np.ndarray
    components: np.ndarray
    scale: np.ndarray

    @property
    def out_dim(self) -> int:
        return self.components.shape[0]

    def transform(self, x: np.ndarray) -> np.ndarray:
        """float [N, D] -> float64 [N, d]."""
        x = np.asarray(x, dtype=np.float64)
        return ((x - self.mean) @ self.components.T) * self.scale


def fit_projection(x: np.ndarray, n_components: int | float, whiten: bool) -> Projection:
    """PCA of x (float [N, D]) keeping ``n_components`` axes (an int) or the fewest axes explaining that
    fraction of the variance (a float in (0, 1)); exact SVD, so the result does not depend on a seed."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=n_components, whiten=whiten, svd_solver="full").fit(np.asarray(x, dtype=np.float64))
    scale = 1.0 / np.sqrt(pca.explained_variance_) if whiten else np.ones(pca.n_components_)
    return Projection(mean=pca.mean_.copy(), components=pca.components_.copy(), scale=scale)


@dataclass(frozen=True)
class DiagonalGmm:
    """Gaussian mixture with diagonal covariances.

    Attributes:
        weights: float64 [K], mixing weights (sum 1).
        means: float64 [K, d].
        variances: float64 [K, d], the diagonal covariances sigma^2.
    """

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray

    @property
    def n_components(self) -> int:
        return self.weights.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def log_joint(self, x: np.ndarray) -> np.ndarray:
        """``log w_k + log N(x_i; mu_k, diag(sigma_k^2))``: x float [N, d] -> float64 [N, K]."""
        x = np.asarray(x, dtype=np.float64)
        precisions = 1.0 / self.variances
        squared_distance = ((x * x) @ precisions.T - 2.0 * x @ (self.means * precisions).T
                            + np.sum(self.means * self.means * precisions, axis=1))
        log_normaliser = -0.5 * (self.dim * LOG_2PI + np.sum(np.log(self.variances), axis=1))
        return np.log(self.weights) + log_normaliser - 0.5 * squared_distance

    def posteriors(self, x: np.ndarray) -> np.ndarray:
        """Soft assignments q_ik = p(k | x_i): x float [N, d] -> float64 [N, K], rows sum to 1."""
        log_joint = self.log_joint(x)
        log_joint -= log_joint.max(axis=1, keepdims=True)
        q = np.exp(log_joint)
        return q / q.sum(axis=1, keepdims=True)


def fit_gmm(x: np.ndarray, n_components: int = 256, n_init: int = 2, max_iter: int = 200,
            seed: int = 0) -> DiagonalGmm:
    """EM fit of a diagonal GMM to x (float [N, d]) with scikit-learn's defaults otherwise (k-means
    initialisation, ``reg_covar`` 1e-6, tolerance 1e-3); the best of ``n_init`` starts is kept."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < n_components:
        raise ValueError(f"need x [N, d] with N >= {n_components} components, got {x.shape}")
    from sklearn.mixture import GaussianMixture

    gmm = GaussianMixture(n_components=n_components, covariance_type="diag", n_init=n_init, max_iter=max_iter,
                          random_state=seed).fit(x)
    return DiagonalGmm(weights=gmm.weights_.copy(), means=gmm.means_.copy(), variances=gmm.covariances_.copy())
