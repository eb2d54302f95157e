"""The ``clusters`` family: k-means (faiss) of the sketched IDT Fisher vectors of all videos, ``m`` runs with
different seeds: the IDT prior of Video LA (Tokmakov et al. 2020). Stored as ``assignments`` int64 [m, V] with
the ``videos`` order, and the clusters' NMI and purity against the class labels where the dataset has them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labels.clusters import KMEANS_ITERATIONS, KMEANS_SEED, VIDEOS_PER_CLUSTER, cluster_quality, kmeans_assignments
from labels.clusters import scaled_cluster_count
from labels.families import FamilyContext, GlobalFamily, register_family


@dataclass
class ClustersSettings:
    """Section ``labels.clusters``. The paper: K = 6000, m = 3 on Kinetics-400; ``k: 0`` scales K to the data
    (``videos_per_cluster`` videos a cluster, at least ``min_k``)."""

    k: int = 0
    runs: int = 3
    seed: int = KMEANS_SEED
    iterations: int = KMEANS_ITERATIONS
    videos_per_cluster: int = VIDEOS_PER_CLUSTER
    min_k: int = 2

    def __post_init__(self) -> None:
        if self.k < 0 or min(self.runs, self.iterations, self.videos_per_cluster, self.min_k) < 1:
            raise ValueError("k must be >= 0 (0: scaled), runs, iterations, videos_per_cluster, min_k >= 1")


def cluster_count(settings: ClustersSettings, n_videos: int) -> int:
    """K used for ``n_videos`` videos: ``settings.k``, or scaled to the data when 0; at most ``n_videos``."""
    k = settings.k or scaled_cluster_count(n_videos, settings.videos_per_cluster, settings.min_k)
    return min(k, n_videos)


def compute(context: FamilyContext) -> dict[str, np.ndarray]:
    """``videos`` str [V], ``assignments`` int64 [runs, V], and ``nmi`` / ``purity`` float64 [1] over the
    labelled videos (NaN without labels)."""
    settings: ClustersSettings = context.settings
    stored = context.consolidated("fisher")
    videos, vectors = stored["videos"], stored["vector"]
    if len(videos) < 2:
        raise ValueError(f"clusters need the Fisher vectors of at least 2 videos, found {len(videos)}")
    assignments = kmeans_assignments(vectors, cluster_count(settings, len(videos)), settings.runs, settings.seed,
                                     settings.iterations)
    labels = {v.id: v.label for v in context.dataset.videos}
    labelled = np.array([labels.get(str(v)) is not None for v in videos])
    quality = {"nmi": np.nan, "purity": np.nan}
    if labelled.sum() >= 2:
        classes = np.array([labels[str(v)] for v in videos[labelled]])
        quality = cluster_quality(assignments[:, labelled], classes)
    return {"videos": videos, "assignments": assignments, "nmi": np.array([quality["nmi"]]),
            "purity": np.array([quality["purity"]])}


register_family(GlobalFamily(name="clusters", compute=compute, Settings=ClustersSettings, requires=("fisher",)))
