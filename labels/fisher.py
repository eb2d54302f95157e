"""Fisher vectors of Improved Dense Trajectory descriptors (the IDT prior of Tokmakov et al., ECCV-W 2020).

A video is its IDT rows, float [N, 436] in the release's column order; columns 10..435 are the 426
descriptor dimensions (Trajectory 30, HOG 96, HOF 108, MBHx 96, MBHy 96). Two variants:

- ``video_cluster``: one PCA keeping 90% of the variance of all 426 dimensions, one diagonal GMM, and the
  Fisher vector of the public Video LA code, ``[sum_i q_ik (x_i - mu_k) / N, sum_i q_ik (sigma_k^2 -
  (x_i - mu_k)^2) / N]`` (means block then variances block, each [K, d] row-major).
- ``standard``: per descriptor type a whitened PCA to half its size and its own GMM; the improved Fisher
  vector of Perronnin et al. (ECCV 2010), ``[sum_i q_ik (x_i - mu_k) / sigma_k / (N sqrt(w_k)),
  sum_i q_ik ((x_i - mu_k)^2 / sigma_k^2 - 1) / (N sqrt(2 w_k))]``, per type.

Every Fisher vector is power-normalised (``sign(v) |v|^alpha``, alpha 0.5) and L2-normalised; the five
``standard`` vectors are concatenated and divided by sqrt(5), so both variants have unit norm.
docs/FISHER.md gives the formulas and the sampling used for the fit.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labels.gaussian_mixture import DiagonalGmm, Projection, fit_gmm, fit_projection

IDT_COLUMNS = 436
DESCRIPTOR_TYPES: dict[str, tuple[int, int]] = {
    "trajectory": (10, 40), "hog": (40, 136), "hof": (136, 244), "mbhx": (244, 340), "mbhy": (340, 436)}
VARIANTS = ("video_cluster", "standard")
VIDEO_CLUSTER_VARIANCE = 0.90
STATISTICS_CHUNK_ROWS = 8192


class EncodingError(ValueError):
    """A video that has no Fisher vector; ``reason`` says why (recorded per video instead of NaNs)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_rows(rows: np.ndarray) -> np.ndarray:
    """IDT rows of one video as float [N, 436]; EncodingError when N is 0 or a value is not finite."""
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] != IDT_COLUMNS:
        raise ValueError(f"IDT rows must be [N, {IDT_COLUMNS}], got {rows.shape}")
    if rows.shape[0] == 0:
        raise EncodingError("no trajectory")
    if not np.isfinite(rows).all():
        raise EncodingError(f"non-finite values in {int((~np.isfinite(rows).all(axis=1)).sum())} trajectories")
    return rows


def choose_fit_videos(n_videos: int, n_chosen: int, seed: int = 0) -> np.ndarray:
    """Sorted int64 indices of ``min(n_chosen, n_videos)`` videos drawn without replacement."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_videos, size=min(n_chosen, n_videos), replace=False)).astype(np.int64)


def sample_rows(rows: np.ndarray, video_index: int, per_video: int = 500, seed: int = 0) -> np.ndarray:
    """Up to ``per_video`` rows of one video (float [N, C] -> [min(N, per_video), C]), drawn without
    replacement in their original order. The draw depends only on (seed, video_index), so workers can
    sample their videos independently and the fit sample is the same in any order or partition."""
    rows = np.asarray(rows)
    if rows.shape[0] <= per_video:
        return rows
    rng = np.random.default_rng([seed, video_index])
    return rows[np.sort(rng.choice(rows.shape[0], size=per_video, replace=False))]


def soft_statistics(x: np.ndarray, gmm: DiagonalGmm,
                    projection: Projection | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zeroth, first and second order statistics ``sum_i q_ik``, ``sum_i q_ik x_i``, ``sum_i q_ik x_i^2``:
    x float [N, d] -> float64 [K], [K, d], [K, d]. With a ``projection``, x is [N, D] and each x_i is
    projected first. Computed in chunks of rows, so memory stays bounded for any N."""
    s0 = np.zeros(gmm.n_components)
    s1 = np.zeros((gmm.n_components, gmm.dim))
    s2 = np.zeros((gmm.n_components, gmm.dim))
    for start in range(0, x.shape[0], STATISTICS_CHUNK_ROWS):
        chunk = np.asarray(x[start:start + STATISTICS_CHUNK_ROWS], dtype=np.float64)
        if projection is not None:
            chunk = projection.transform(chunk)
        q = gmm.posteriors(chunk)
        s0 += q.sum(axis=0)
        s1 += q.T @ chunk
        s2 += q.T @ (chunk * chunk)
    return s0, s1, s2


def _centred_second_moment(s0: np.ndarray, s1: np.ndarray, s2: np.ndarray, means: np.ndarray) -> np.ndarray:
    """``sum_i q_ik (x_i - mu_k)^2`` [K, d] from the soft statistics."""
    return s2 - 2.0 * means * s1 + s0[:, None] * means * means


def video_cluster_fisher_vector(x: np.ndarray, gmm: DiagonalGmm, projection: Projection | None = None) -> np.ndarray:
    """Video LA code's Fisher vector (no normalisation): x float [N, d] (or [N, D] and its ``projection``)
    -> float64 [2 K d], ``[sum q (x - mu) / N, sum q (sigma^2 - (x - mu)^2) / N]``."""
    n = x.shape[0]
    s0, s1, s2 = soft_statistics(x, gmm, projection)
    d_means = (s1 - s0[:, None] * gmm.means) / n
    d_variances = (s0[:, None] * gmm.variances - _centred_second_moment(s0, s1, s2, gmm.means)) / n
    return np.concatenate([d_means.ravel(), d_variances.ravel()])


def improved_fisher_vector(x: np.ndarray, gmm: DiagonalGmm, projection: Projection | None = None) -> np.ndarray:
    """Perronnin et al. (2010) Fisher vector before normalisation: x float [N, d] (or [N, D] and its
    ``projection``) -> float64 [2 K d],
    ``[sum q (x - mu) / sigma / (N sqrt(w)), sum q ((x - mu)^2 / sigma^2 - 1) / (N sqrt(2 w))]``."""
    n = x.shape[0]
    s0, s1, s2 = soft_statistics(x, gmm, projection)
    root_weights = np.sqrt(gmm.weights)[:, None]
    g_means = (s1 - s0[:, None] * gmm.means) / np.sqrt(gmm.variances) / (n * root_weights)
    g_variances = ((_centred_second_moment(s0, s1, s2, gmm.means) / gmm.variances - s0[:, None])
                   / (n * np.sqrt(2.0) * root_weights))
    return np.concatenate([g_means.ravel(), g_variances.ravel()])


def power_l2_normalise(vector: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``sign(v) |v|^alpha`` scaled to unit L2 norm: float [D] -> float64 [D]; an all-zero vector stays 0."""
    powered = np.sign(vector) * np.abs(np.asarray(vector, dtype=np.float64)) ** alpha
    norm = np.linalg.norm(powered)
    return powered / norm if norm > 0 else powered


FISHER_VECTORS = {"video_cluster": video_cluster_fisher_vector, "standard": improved_fisher_vector}


@dataclass(frozen=True)
class FisherBlock:
    """The model of one group of IDT columns ``start:stop``: its projection and its GMM."""

    start: int
    stop: int
    projection: Projection
    gmm: DiagonalGmm


@dataclass(frozen=True)
class FisherEncoder:
    """Fitted Fisher vector encoder of IDT rows (``fit`` on a sample, ``transform`` one video at a time)."""

    variant: str
    blocks: tuple[FisherBlock, ...]
    alpha: float = 0.5

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")

    @property
    def dim(self) -> int:
        """Length of a video's Fisher vector, ``sum over blocks of 2 K d``."""
        return sum(2 * block.gmm.n_components * block.gmm.dim for block in self.blocks)

    @classmethod
    def fit(cls, sample: np.ndarray, variant: str, n_components: int = 256, n_init: int = 2,
            max_iter: int = 200, seed: int = 0, alpha: float = 0.5) -> FisherEncoder:
        """Fit PCA and GMM(s) of ``variant`` on sampled IDT rows (float [M, 436], e.g. up to 500 rows per
        video from :func:`sample_rows`); ``n_components`` is K, the number of Gaussians of each GMM, and
        ``alpha`` the exponent of the power normalisation applied by :meth:`transform`."""
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        sample = np.asarray(sample)  # kept in its dtype: only one block at a time is converted to float64
        if sample.ndim != 2 or sample.shape[1] != IDT_COLUMNS or not np.isfinite(sample).all():
            raise ValueError(f"the fit sample must be finite [M, {IDT_COLUMNS}] IDT rows, got {sample.shape}")
        if variant == "video_cluster":
            groups = [(DESCRIPTOR_TYPES["trajectory"][0], IDT_COLUMNS, VIDEO_CLUSTER_VARIANCE, False)]
        else:
            groups = [(start, stop, (stop - start) // 2, True) for start, stop in DESCRIPTOR_TYPES.values()]
        blocks = []
        for start, stop, kept, whiten in groups:
            projection = fit_projection(sample[:, start:stop], kept, whiten)
            gmm = fit_gmm(projection.transform(sample[:, start:stop]), n_components, n_init, max_iter, seed)
            blocks.append(FisherBlock(start, stop, projection, gmm))
        return cls(variant, tuple(blocks), alpha)

    def transform(self, rows: np.ndarray) -> np.ndarray:
        """One video's normalised Fisher vector: IDT rows float [N, 436] -> float64 [dim] of unit norm.
        Raises EncodingError (with ``reason``) for a video without trajectories or with non-finite values."""
        rows = check_rows(rows)
        fisher_vector = FISHER_VECTORS[self.variant]
        parts = [power_l2_normalise(fisher_vector(rows[:, block.start:block.stop], block.gmm, block.projection),
                                    self.alpha)
                 for block in self.blocks]
        return np.concatenate(parts) / np.sqrt(len(parts))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (no pickle) that :meth:`from_arrays` turns back into an equal encoder."""
        arrays = {"variant": np.array(self.variant), "alpha": np.array(self.alpha),
                  "n_blocks": np.array(len(self.blocks))}
        for i, block in enumerate(self.blocks):
            arrays.update({f"block{i}_columns": np.array([block.start, block.stop]),
                           f"block{i}_mean": block.projection.mean,
                           f"block{i}_components": block.projection.components,
                           f"block{i}_scale": block.projection.scale,
                           f"block{i}_weights": block.gmm.weights,
                           f"block{i}_means": block.gmm.means,
                           f"block{i}_variances": block.gmm.variances})
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> FisherEncoder:
        """Inverse of :meth:`to_arrays` (a dict or an opened npz)."""
        blocks = []
        for i in range(int(arrays["n_blocks"])):
            start, stop = (int(c) for c in arrays[f"block{i}_columns"])
            projection = Projection(arrays[f"block{i}_mean"], arrays[f"block{i}_components"],
                                    arrays[f"block{i}_scale"])
            gmm = DiagonalGmm(arrays[f"block{i}_weights"], arrays[f"block{i}_means"], arrays[f"block{i}_variances"])
            blocks.append(FisherBlock(start, stop, projection, gmm))
        return cls(str(arrays["variant"]), tuple(blocks), float(arrays["alpha"]))

    def save(self, path: str | Path) -> None:
        """Write the fitted model to an .npz of plain arrays."""
        np.savez(path, **self.to_arrays())

    @classmethod
    def load(cls, path: str | Path) -> FisherEncoder:
        """Read a model written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as arrays:
            return cls.from_arrays({key: arrays[key] for key in arrays.files})
