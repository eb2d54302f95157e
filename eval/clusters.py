"""Cluster quality of network features next to the IDT clusters (``eval --task clusters``).

The ``clusters`` label family stores k-means assignments of the videos' sketched IDT Fisher vectors and their NMI
and purity against the class labels. This protocol runs the same k-means (``labels.clusters.kmeans_assignments``
with the K, runs, seed and iterations recorded by the family) on the pooled features of each evaluated backbone
(its random initialisation, and the pretrained one when given) over the same videos, L2-normalised as the Fisher
vectors are, and reports the figures side by side: does the IDT prior carry more action information than the
features of a network that has learnt nothing?
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from labels.clusters import cluster_quality, kmeans_assignments
from labels.families.clusters import ClustersSettings, cluster_count
from labels.store import consolidated_path, labels_root, read_arrays, read_settings
from preprocess.dataset import Dataset

CLUSTERS_TASK = "clusters"


@dataclass(frozen=True)
class StoredClusters:
    """The ``clusters`` labels of a dataset: ``videos`` [V] in their stored order, ``assignments`` int64 [m, V],
    the stored ``nmi`` and ``purity`` (NaN without class labels), the family's ``settings`` and the ``k`` used."""

    videos: list[str]
    assignments: np.ndarray
    nmi: float
    purity: float
    settings: ClustersSettings
    k: int


def load_stored_clusters(data_dir: str | Path, labels_dir: str | Path | None = None) -> StoredClusters:
    """Read the ``clusters`` labels of ``data_dir`` (or of ``labels_dir``); LabelError naming the file when
    there are none."""
    root = labels_root(data_dir, labels_dir)
    recorded = read_settings(root, CLUSTERS_TASK)
    stored = read_arrays(consolidated_path(root, CLUSTERS_TASK), CLUSTERS_TASK)
    settings = ClustersSettings(**recorded["family"])
    videos = [str(v) for v in stored["videos"]]
    return StoredClusters(videos, stored["assignments"], float(stored["nmi"][0]), float(stored["purity"][0]),
                          settings, cluster_count(settings, len(videos)))


def feature_assignments(features: np.ndarray, stored: StoredClusters) -> np.ndarray:
    """k-means of L2-normalised ``features`` float [V, D] with the stored clusters' K, runs, seed and iterations:
    int64 [runs, V]."""
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    x = features / np.maximum(norms, np.finfo(np.float32).tiny)
    s = stored.settings
    return kmeans_assignments(x, stored.k, s.runs, s.seed, s.iterations)


def labelled_quality(assignments: np.ndarray, videos: list[str], dataset: Dataset) -> dict[str, float]:
    """Mean NMI and purity over the runs of ``assignments`` int [m, V] on the videos with a class label
    (NaN when fewer than 2 have one)."""
    labels = [dataset.video(v).label for v in videos]
    labelled = np.array([label is not None for label in labels])
    if labelled.sum() < 2:
        return {"nmi": float("nan"), "purity": float("nan")}
    classes = np.array([label for label in labels if label is not None])
    return cluster_quality(np.atleast_2d(assignments)[:, labelled], classes)


def clustered_videos(stored: StoredClusters, dataset: Dataset) -> list[str]:
    """The clustered video ids in their stored order; ValueError when one is not a video of ``dataset``."""
    have = {record.id for record in dataset.videos}
    missing = [v for v in stored.videos if v not in have]
    if missing:
        raise ValueError(f"{dataset.path}: {len(missing)} clustered video(s) are not in the dataset, e.g. "
                         f"{missing[0]!r} (were the clusters made from another dataset?)")
    return list(stored.videos)


def cluster_comparison(stored: StoredClusters, dataset: Dataset, features: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """NMI and purity of the stored IDT clusters and of k-means on each model's video features.

    ``features`` maps a model name to its video features float [V, D], rows in ``clustered_videos`` order.
    Returns ``{"k", "runs", "videos", "labelled", "idt": {"nmi", "purity"}, "models": {name: {"nmi", "purity"}}}``.
    """
    qualities = {name: labelled_quality(feature_assignments(x, stored), stored.videos, dataset)
                 for name, x in features.items()}
    return {"k": stored.k, "runs": stored.settings.runs, "videos": len(stored.videos),
            "labelled": sum(dataset.video(v).label is not None for v in stored.videos),
            "idt": {"nmi": stored.nmi, "purity": stored.purity}, "models": qualities}


def clusters_markdown(section: Mapping[str, Any]) -> str:
    """A Markdown table of a :func:`cluster_comparison` result: one row per clustering, NMI and purity in %."""
    lines = [f"## Cluster quality (k-means, K = {section['k']}, {section['runs']} runs, {section['videos']} videos, "
             f"{section['labelled']} labelled)", "", "| clusters of | NMI (%) | purity (%) |", "|---|---|---|"]
    rows = {"IDT Fisher vectors (stored clusters)": section["idt"],
            **{f"{name} features": quality for name, quality in section["models"].items()}}
    for name, quality in rows.items():
        lines.append(f"| {name} | {100 * quality['nmi']:.1f} | {100 * quality['purity']:.1f} |")
    return "\n".join(lines) + "\n"
