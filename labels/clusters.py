"""k-means clusters of sketched Fisher vectors (faiss) and their quality against class labels.

As in the public Video LA code: ``m`` runs of faiss k-means, run r seeded ``seed + r``, 20 iterations,
no subsampling of the points (``max_points_per_centroid`` 10^7), each video assigned to its nearest
centroid. The paper uses K = 6000 and m = 3 on Kinetics-400 (about 240k training videos, i.e. about 40
videos per cluster); :func:`scaled_cluster_count` keeps that ratio for other datasets.
"""
from __future__ import annotations

import numpy as np

# faiss and scikit-learn are imported where they are used: importing them costs ~0.9 s and loads OpenMP
# runtimes that slow OpenCV in the label workers of the other families (which import this module's family).

KMEANS_ITERATIONS = 20
KMEANS_SEED = 1234
MAX_POINTS_PER_CENTROID = 10_000_000
VIDEOS_PER_CLUSTER = 40  # Kinetics-400: K = 6000 for about 240k training videos


def scaled_cluster_count(n_videos: int, videos_per_cluster: int = VIDEOS_PER_CLUSTER, minimum: int = 2) -> int:
    """K for a dataset of ``n_videos``: ``round(n_videos / videos_per_cluster)``, at least ``minimum`` and
    at most ``n_videos`` (K = 6000 for 240k videos, 250 for 10k, 4 for ARID's 150)."""
    if n_videos < 1:
        raise ValueError(f"n_videos must be positive, got {n_videos}")
    return int(min(n_videos, max(minimum, round(n_videos / videos_per_cluster))))


def kmeans_assignments(x: np.ndarray, k: int, runs: int = 3, seed: int = KMEANS_SEED,
                       iterations: int = KMEANS_ITERATIONS) -> np.ndarray:
    """Cluster index of every row of x (float [N, D]) for ``runs`` k-means runs: int64 [runs, N] in [0, k).

    Run r uses seed ``seed + r``; the same seed gives the same assignments on the same machine and data."""
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or not 1 <= k <= x.shape[0]:
        raise ValueError(f"need x [N, D] with 1 <= k <= N, got x {x.shape} and k={k}")
    assignments = np.empty((runs, x.shape[0]), dtype=np.int64)
    for run in range(runs):
        clustering = faiss.Clustering(x.shape[1], k)
        clustering.niter = iterations
        clustering.max_points_per_centroid = MAX_POINTS_PER_CENTROID
        clustering.min_points_per_centroid = 1  # only silences faiss' "too few points" warning
        clustering.seed = seed + run
        index = faiss.IndexFlatL2(x.shape[1])
        clustering.train(x, index)
        assignments[run] = index.search(x, 1)[1][:, 0]
    return assignments


def purity(assignments: np.ndarray, classes: np.ndarray) -> float:
    """Share of items whose class is the most frequent class of their cluster: int [N], int [N] -> float."""
    assignments, classes = np.asarray(assignments), np.asarray(classes)
    if assignments.shape != classes.shape or assignments.ndim != 1 or assignments.size == 0:
        raise ValueError(f"need two equal non-empty [N] label arrays, got {assignments.shape}, {classes.shape}")
    _, cluster_ids = np.unique(assignments, return_inverse=True)
    _, class_ids = np.unique(classes, return_inverse=True)
    counts = np.zeros((cluster_ids.max() + 1, class_ids.max() + 1), dtype=np.int64)
    np.add.at(counts, (cluster_ids, class_ids), 1)
    return float(counts.max(axis=1).sum() / assignments.size)


def cluster_quality(assignments: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    """Mean NMI (scikit-learn, arithmetic normalisation) and purity over the runs of assignments
    (int [m, N] or [N]) against the class of each item (int or str [N])."""
    from sklearn.metrics import normalized_mutual_info_score

    runs = np.atleast_2d(assignments)
    return {"nmi": float(np.mean([normalized_mutual_info_score(classes, run) for run in runs])),
            "purity": float(np.mean([purity(run, classes) for run in runs]))}
