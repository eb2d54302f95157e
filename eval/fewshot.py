"""Few-shot classification: k labelled videos per class, a linear classifier on frozen features."""
from __future__ import annotations

import numpy as np

from eval.metrics import topk_accuracy
from eval.probe import logistic_regression_probabilities
from eval.retrieval import l2_normalize
from eval.splits import few_shot_draw


def few_shot_accuracy(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    n_classes: int,
    shots: list[int] | tuple[int, ...],
    draws: int = 10,
    seed: int = 0,
    c: float = 1.0,
) -> dict[int, dict]:
    """Top-1 accuracy of logistic regression trained on ``k`` videos per class, over ``draws`` draws.

    Features are L2-normalised [N, D] / [M, D] with int labels. Returns, per k,
    ``{"mean", "std", "accuracies": [draws], "indices": [draws][k * n_classes]}``. A k larger than the
    smallest class raises ValueError naming the classes.
    """
    train_x, test_x = l2_normalize(train_features), l2_normalize(test_features)
    results: dict[int, dict] = {}
    for k in shots:
        rng = np.random.default_rng([seed, k])
        accuracies, drawn = [], []
        for _ in range(draws):
            chosen = few_shot_draw(train_labels, k, rng)
            probabilities = logistic_regression_probabilities(
                train_x[chosen], train_labels[chosen], test_x, n_classes, c=c
            )
            accuracies.append(topk_accuracy(probabilities, test_labels, 1))
            drawn.append(chosen.tolist())
        results[int(k)] = {
            "mean": float(np.mean(accuracies)),
            "std": float(np.std(accuracies)),
            "accuracies": accuracies,
            "indices": drawn,
        }
    return results
