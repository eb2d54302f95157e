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
import torch

from eval.features import cached_features
from eval.settings import EvalSettings
from labels.clusters import cluster_quality, kmeans_assignments
from labels.families.clusters import ClustersSettings, cluster_count
from labels.store import consolidated_path, labels_root, read_arrays, read_settings
from preprocess.dataset import Dataset

TASK = "clusters"


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
    recorded = read_settings(root, TASK)
    stored = read_arrays(consolidated_path(root, TASK), TASK)
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


def cluster_comparison(models: Mapping[str, Any], dataset: Dataset, data_dir: str | Path, settings: EvalSettings,
                       cache_dir: str | Path, device: str | torch.device, progress: bool = False,
                       labels_dir: str | Path | None = None) -> dict[str, Any]:
    """NMI and purity of the stored IDT clusters and of k-means on each model's video features.

    ``models`` maps a name to an object with ``backbone`` and ``weights_id`` (``eval.evaluate.Model``). Returns
    ``{"k", "runs", "videos", "labelled", "idt": {"nmi", "purity"}, "models": {name: {"nmi", "purity"}}}``.
    """
    stored = load_stored_clusters(data_dir, labels_dir)
    missing = [v for v in stored.videos if v not in {r.id for r in dataset.videos}]
    if missing:
        raise ValueError(f"{data_dir}: {len(missing)} clustered video(s) are not in the dataset, e.g. {missing[0]!r} "
                         "(were the clusters made from another dataset?)")
    ids = sorted(stored.videos)
    order = [ids.index(v) for v in stored.videos]
    qualities = {}
    for name, model in models.items():
        features = cached_features(model.backbone, model.weights_id, dataset, data_dir, ids, settings.stage,
                                   settings.stream, settings.clips, cache_dir, device, progress)[order]
        qualities[name] = labelled_quality(feature_assignments(features, stored), stored.videos, dataset)
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
