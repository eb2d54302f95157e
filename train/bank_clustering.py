"""k-means of memory-bank vectors for Local Aggregation (faiss, m runs with different seeds)."""
from __future__ import annotations

import faiss
import numpy as np

KMEANS_ITERATIONS = 20
PAPER_CLUSTERS = 6000
PAPER_VIDEOS = 240_000
"""Tokmakov et al. use K = 6000 clusters (m = 3 runs) for Kinetics-400, about 240k training videos."""


def scaled_num_clusters(num_videos: int, paper_clusters: int = PAPER_CLUSTERS,
                        paper_videos: int = PAPER_VIDEOS) -> int:
    """K for a dataset of ``num_videos``: the paper's videos-per-cluster ratio (about 40), at least 2 clusters
    and at most one per video."""
    if num_videos < 2:
        raise ValueError(f"clustering needs at least 2 videos, got {num_videos}")
    return int(min(num_videos, max(2, round(num_videos * paper_clusters / paper_videos))))


def kmeans_runs(vectors: np.ndarray, num_clusters: int, runs: int, seed: int = 0,
                iterations: int = KMEANS_ITERATIONS) -> np.ndarray:
    """Cluster labels of ``runs`` k-means runs (seeds seed, seed + 1, ...): float [N, D] -> int64 [runs, N].

    Every point is used (no subsampling); Euclidean k-means, which on unit vectors orders like cosine.
    """
    points = np.ascontiguousarray(vectors, dtype=np.float32)
    if points.ndim != 2 or not 1 <= num_clusters <= points.shape[0] or runs < 1:
        raise ValueError(f"kmeans_runs: need [N, D] points with 1 <= K <= N and runs >= 1, got "
                         f"{points.shape}, K = {num_clusters}, runs = {runs}")
    labels = np.empty((runs, points.shape[0]), dtype=np.int64)
    for run in range(runs):
        kmeans = faiss.Kmeans(points.shape[1], num_clusters, niter=iterations, seed=seed + run,
                              max_points_per_centroid=points.shape[0], min_points_per_centroid=1, verbose=False)
        kmeans.train(points)
        labels[run] = kmeans.index.search(points, 1)[1][:, 0]
    return labels
