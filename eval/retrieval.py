"""Nearest-neighbour video retrieval by cosine similarity (numpy in, numpy out)."""
from __future__ import annotations

import numpy as np


def l2_normalize(features: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm: float [N, D] -> float [N, D] (zero rows stay zero)."""
    features = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, eps)


def cosine_similarity(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Cosine similarity of every query to every gallery item: [Q, D] x [G, D] -> float64 [Q, G]."""
    return l2_normalize(queries) @ l2_normalize(gallery).T


def nearest_neighbours(queries: np.ndarray, gallery: np.ndarray, k: int) -> np.ndarray:
    """Gallery indices of the ``k`` most similar items per query, most similar first.

    queries: [Q, D], gallery: [G, D]. Returns int64 [Q, min(k, G)]; ties go to the lower index.
    """
    similarity = cosine_similarity(queries, gallery)
    order = np.argsort(-similarity, axis=1, kind="stable")
    return order[:, : min(k, gallery.shape[0])].astype(np.int64)


def retrieval_recall(
    queries: np.ndarray,
    query_labels: np.ndarray,
    gallery: np.ndarray,
    gallery_labels: np.ndarray,
    ks: list[int] | tuple[int, ...],
) -> dict[int, float]:
    """Top-k recall: fraction of queries with at least one same-class item among their k nearest.

    queries: [Q, D] with int labels [Q]; gallery: [G, D] with int labels [G]. A k larger than G counts
    the whole gallery. Returns {k: recall in [0, 1]}.
    """
    if len(queries) == 0 or len(gallery) == 0:
        raise ValueError(f"retrieval needs queries and gallery items, got {len(queries)} and {len(gallery)}")
    neighbours = nearest_neighbours(queries, gallery, max(ks))
    same_class = np.asarray(gallery_labels)[neighbours] == np.asarray(query_labels)[:, None]
    first_hit_rank = np.where(same_class.any(axis=1), same_class.argmax(axis=1), np.iinfo(np.int64).max)
    return {int(k): float((first_hit_rank < k).mean()) for k in ks}
