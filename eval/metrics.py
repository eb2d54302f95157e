"""Classification metrics on score matrices (numpy in, numpy out)."""
from __future__ import annotations

import numpy as np


def topk_predictions(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores per row, best first.

    scores: float [N, C]. Returns int64 [N, min(k, C)]; ties go to the lower class index.
    """
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")
    return order[:, :k].astype(np.int64)


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Fraction of rows whose true class is among the ``k`` best-scored classes.

    scores: float [N, C]; labels: int [N] in [0, C). Returns a float in [0, 1].
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim != 2 or labels.shape != (scores.shape[0],):
        raise ValueError(f"scores must be [N, C] and labels [N], got {scores.shape} and {labels.shape}")
    if len(labels) == 0:
        raise ValueError("cannot compute accuracy of zero samples")
    hits = (topk_predictions(scores, k) == labels[:, None]).any(axis=1)
    return float(hits.mean())


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]``: int64 [n_classes, n_classes] from int [N] labels and predictions."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix
