"""Action similarity labelling (ASLAN protocol, Kliper-Gross et al. 2012): the 12 (dis)similarities of
two video features, their concatenation over pooling stages, and the same/not-same linear SVM scored by
cross-validation over the pair list's folds.

Definitions and the zero cases are in docs/SIMILARITY.md (Table 3 of the paper, ``x1.*x2`` is the
element-wise product).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

SIMILARITY_NAMES: tuple[str, ...] = (
    "dot",                  # sum(x1 * x2)
    "sqrt_dot",             # sqrt(sum(x1 * x2))
    "sqrt_bhattacharyya",   # sqrt(sum(sqrt(x1) * sqrt(x2)))
    "sqrt_harmonic",        # sqrt(sum(x1 * x2 / (x1 + x2)))
    "cosine",               # sum(x1 * x2) / (||x1|| ||x2||)
    "sqrt_chi2",            # sqrt(sum((x1 - x2)^2 / (x1 + x2)))
    "l1",                   # sum(|x1 - x2|)
    "hellinger",            # sqrt(sum((sqrt(x1) - sqrt(x2))^2))
    "euclidean",            # sqrt(sum((x1 - x2)^2))
    "symmetric_kl",         # (sum(x1 log(x1/x2)) + sum(x2 log(x2/x1))) / 2
    "sqrt_max_ratio",       # sum(sqrt(max(x1, x2)) / sqrt(x1 + x2))
    "intersection",         # sum(min(x1, x2)) / (sum(x1) * sum(x2))
)

KL_FLOOR = 1e-10  # entries below this are raised to it before the logs of "symmetric_kl"


def _ratio(numerator: np.ndarray, denominator: np.ndarray, where_zero: float = 0.0) -> np.ndarray:
    """numerator / denominator, ``where_zero`` where the denominator is 0."""
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, where_zero)


def pair_similarities(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The 12 (dis)similarities of each pair of non-negative feature vectors, in ``SIMILARITY_NAMES`` order.

    first, second: float [P, D] (or [D] for one pair), entries >= 0 (pooled ReLU features).
    Returns float64 [P, 12] (or [12]). Zero cases (docs/SIMILARITY.md): 0/0 terms of ``sqrt_harmonic``
    and ``sqrt_chi2`` count 0; ``cosine`` and ``intersection`` are 0 when a vector is all zeros;
    ``symmetric_kl`` floors entries at ``KL_FLOOR``; a 0/0 term of ``sqrt_max_ratio`` counts 1/sqrt(2),
    its value for any two equal entries. Negative entries raise ValueError.
    """
    x1, x2 = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if x1.shape != x2.shape or x1.ndim not in (1, 2):
        raise ValueError(f"expected two feature arrays [P, D] (or [D]) of one shape, got {x1.shape} and {x2.shape}")
    if (x1 < 0).any() or (x2 < 0).any():
        raise ValueError("the ASLAN (dis)similarities need non-negative features (sqrt and log of entries)")
    if x1.ndim == 1:
        return pair_similarities(x1[None], x2[None])[0]
    product, total, difference = x1 * x2, x1 + x2, x1 - x2
    dot = product.sum(axis=1)
    norms = np.linalg.norm(x1, axis=1) * np.linalg.norm(x2, axis=1)
    floored1, floored2 = np.maximum(x1, KL_FLOOR), np.maximum(x2, KL_FLOOR)
    columns = [
        dot,
        np.sqrt(dot),
        np.sqrt(np.sqrt(product).sum(axis=1)),
        np.sqrt(_ratio(product, total).sum(axis=1)),
        _ratio(dot, norms),
        np.sqrt(_ratio(difference**2, total).sum(axis=1)),
        np.abs(difference).sum(axis=1),
        np.sqrt(((np.sqrt(x1) - np.sqrt(x2)) ** 2).sum(axis=1)),
        np.sqrt((difference**2).sum(axis=1)),
        0.5 * ((floored1 - floored2) * (np.log(floored1) - np.log(floored2))).sum(axis=1),
        np.sqrt(_ratio(np.maximum(x1, x2), total, where_zero=0.5)).sum(axis=1),
        _ratio(np.minimum(x1, x2).sum(axis=1), x1.sum(axis=1) * x2.sum(axis=1)),
    ]
    return np.stack(columns, axis=1)


def pair_features(stage_features: Sequence[np.ndarray], first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The 12 (dis)similarities of every pair at every stage, concatenated stage by stage.

    stage_features: per stage (e.g. pool3, pool4, pool5) the video features float [N, D_s];
    first, second: int [P] video indices of the pairs. Returns float64 [P, 12 * len(stage_features)]
    (columns 0-11 the first stage, 12-23 the second, ...).
    """
    first, second = np.asarray(first, dtype=np.int64), np.asarray(second, dtype=np.int64)
    return np.concatenate([pair_similarities(np.asarray(f)[first], np.asarray(f)[second])
                           for f in stage_features], axis=1)


def mean_and_standard_error(accuracies: Sequence[float]) -> tuple[float, float]:
    """ASLAN's summary of per-fold accuracies: the mean and SE = std (n - 1 in the denominator) / sqrt(n)."""
    values = np.asarray(accuracies, dtype=np.float64)
    if len(values) < 2:
        raise ValueError(f"a standard error needs at least 2 folds, got {len(values)}")
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


def same_not_same_cross_validation(features: np.ndarray, same: np.ndarray, folds: np.ndarray, c: float = 1.0,
                                   max_iter: int = 10000) -> dict:
    """Leave-one-fold-out same/not-same classification of pairs with a linear SVM.

    features: float [P, F] pair descriptors (``pair_features``); same: bool [P]; folds: int [P]. For every
    fold, each column is standardised with the mean and std of the other folds' pairs only, a
    ``LinearSVC(C=c)`` is fitted on those and labels the fold's pairs. Returns ``{"accuracy", "se",
    "auc", "fold_accuracies", "fold_aucs", "folds", "predictions": bool [P], "scores": float64 [P]}``
    (``accuracy`` and ``se`` by ``mean_and_standard_error``; ``auc`` the mean of the per-fold ROC AUCs).
    """
    x = np.asarray(features, dtype=np.float64)
    same, folds = np.asarray(same, dtype=bool), np.asarray(folds)
    if x.ndim != 2 or same.shape != (len(x),) or folds.shape != (len(x),):
        raise ValueError(f"expected features [P, F], same [P] and folds [P], "
                         f"got {x.shape}, {same.shape}, {folds.shape}")
    scores = np.zeros(len(x))
    fold_ids = np.unique(folds)
    fold_accuracies, fold_aucs = [], []
    for fold in fold_ids:
        test, train = folds == fold, folds != fold
        if len(np.unique(same[train])) < 2 or len(np.unique(same[test])) < 2:
            raise ValueError(f"fold {fold}: training and test pairs must both hold same and not-same pairs")
        scaler = StandardScaler().fit(x[train])
        model = LinearSVC(C=c, max_iter=max_iter, random_state=0).fit(scaler.transform(x[train]), same[train])
        scores[test] = model.decision_function(scaler.transform(x[test]))
        fold_accuracies.append(float(((scores[test] > 0) == same[test]).mean()))
        fold_aucs.append(float(roc_auc_score(same[test], scores[test])))
    accuracy, se = mean_and_standard_error(fold_accuracies)
    return {"accuracy": accuracy, "se": se, "auc": float(np.mean(fold_aucs)), "fold_accuracies": fold_accuracies,
            "fold_aucs": fold_aucs, "folds": fold_ids.tolist(), "predictions": scores > 0, "scores": scores}
