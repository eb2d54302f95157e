"""ASLAN (dis)similarities, pair descriptors and the same/not-same cross-validation.

Each of the 12 values is checked against numbers worked out by hand (docs/SIMILARITY.md), including
zero entries and all-zero vectors; the cross-validation against a brute-force loop.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.svm import LinearSVC

from eval.similarity import (
    KL_FLOOR,
    SIMILARITY_NAMES,
    mean_and_standard_error,
    pair_features,
    pair_similarities,
    same_not_same_cross_validation,
)

EPS = KL_FLOOR
LOG_EPS = math.log(KL_FLOOR)

# x1 = (1, 4, 9, 0), x2 = (4, 1, 0, 0): entry 2 is zero in x2 only, entry 3 zero in both.
HAND = {
    "dot": 4 + 4,
    "sqrt_dot": math.sqrt(8),
    "sqrt_bhattacharyya": math.sqrt(2 + 2),
    "sqrt_harmonic": math.sqrt(4 / 5 + 4 / 5),
    "cosine": 8 / (math.sqrt(1 + 16 + 81) * math.sqrt(16 + 1)),
    "sqrt_chi2": math.sqrt(9 / 5 + 9 / 5 + 81 / 9),
    "l1": 3 + 3 + 9,
    "hellinger": math.sqrt(1 + 1 + 9),
    "euclidean": math.sqrt(9 + 9 + 81),
    "symmetric_kl": 0.5 * (3 * math.log(4) + 3 * math.log(4) + (9 - EPS) * (math.log(9) - LOG_EPS)),
    "sqrt_max_ratio": 2 * math.sqrt(4 / 5) + 1 + 1 / math.sqrt(2),
    "intersection": (1 + 1) / (14 * 5),
}

# x1 = 0, x2 = (1, 4): one all-zero vector.
HAND_ONE_ZERO = {
    "dot": 0, "sqrt_dot": 0, "sqrt_bhattacharyya": 0, "sqrt_harmonic": 0, "cosine": 0,
    "sqrt_chi2": math.sqrt(1 + 4), "l1": 5, "hellinger": math.sqrt(1 + 4), "euclidean": math.sqrt(17),
    "symmetric_kl": 0.5 * ((EPS - 1) * (LOG_EPS - 0) + (EPS - 4) * (LOG_EPS - math.log(4))),
    "sqrt_max_ratio": 2.0, "intersection": 0,
}


def test_twelve_similarities_match_hand_values() -> None:
    assert len(SIMILARITY_NAMES) == 12 and set(SIMILARITY_NAMES) == set(HAND)
    values = pair_similarities(np.array([1.0, 4, 9, 0]), np.array([4.0, 1, 0, 0]))
    assert values.shape == (12,)
    for name, value in zip(SIMILARITY_NAMES, values):
        assert value == pytest.approx(HAND[name], rel=1e-12), name


def test_similarities_of_zero_vectors_are_defined() -> None:
    values = pair_similarities(np.zeros(2), np.array([1.0, 4.0]))
    for name, value in zip(SIMILARITY_NAMES, values):
        assert value == pytest.approx(HAND_ONE_ZERO[name], rel=1e-12, abs=1e-15), name
    both_zero = dict(zip(SIMILARITY_NAMES, pair_similarities(np.zeros(3), np.zeros(3))))
    assert both_zero["sqrt_max_ratio"] == pytest.approx(3 / math.sqrt(2))
    assert all(v == 0 for name, v in both_zero.items() if name != "sqrt_max_ratio")
    assert np.isfinite(pair_similarities(np.zeros(3), np.array([0.0, 1e-30, 1.0]))).all()


def test_identical_vectors_give_the_expected_extremes() -> None:
    x = np.array([0.2, 0.0, 0.5, 0.3])
    values = dict(zip(SIMILARITY_NAMES, pair_similarities(x, x)))
    for name in ("sqrt_chi2", "l1", "hellinger", "euclidean", "symmetric_kl"):
        assert values[name] == 0.0, name
    assert values["cosine"] == pytest.approx(1.0)
    assert values["sqrt_max_ratio"] == pytest.approx(4 / math.sqrt(2))  # every entry (zero or not) 1/sqrt(2)
    assert values["intersection"] == pytest.approx(1.0)  # sum(x) = 1


def test_batched_similarities_equal_one_pair_at_a_time_and_check_input() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random((5, 7)) * (rng.random((5, 7)) > 0.3), rng.random((5, 7))
    batched = pair_similarities(a, b)
    assert batched.shape == (5, 12)
    for i in range(5):
        np.testing.assert_allclose(batched[i], pair_similarities(a[i], b[i]), rtol=1e-14)
    with pytest.raises(ValueError, match="non-negative"):
        pair_similarities(np.array([1.0, -0.1]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="one shape"):
        pair_similarities(np.ones((2, 3)), np.ones((2, 4)))


def test_pair_features_concatenate_stages_in_order() -> None:
    rng = np.random.default_rng(1)
    stages = [rng.random((4, 3)), rng.random((4, 5)), rng.random((4, 2))]
    first, second = np.array([0, 2, 3]), np.array([1, 1, 0])
    features = pair_features(stages, first, second)
    assert features.shape == (3, 36)
    for s, stage in enumerate(stages):
        for p in range(3):
            np.testing.assert_array_equal(features[p, 12 * s: 12 * (s + 1)],
                                          pair_similarities(stage[first[p]], stage[second[p]]))


def test_standard_error_is_aslans() -> None:
    accuracies = [0.5, 0.6, 0.7, 0.6]
    mean, se = mean_and_standard_error(accuracies)
    sigma = math.sqrt(((0.5 - 0.6) ** 2 + 0 + (0.7 - 0.6) ** 2 + 0) / 3)
    assert mean == pytest.approx(0.6) and se == pytest.approx(sigma / 2)


def _brute_force_fold_scores(x, same, folds, fold):
    train = [i for i in range(len(x)) if folds[i] != fold]
    test = [i for i in range(len(x)) if folds[i] == fold]
    mean = [sum(x[i][j] for i in train) / len(train) for j in range(x.shape[1])]
    std = [math.sqrt(sum((x[i][j] - mean[j]) ** 2 for i in train) / len(train)) for j in range(x.shape[1])]

    def scale(rows):
        return np.array([[(x[i][j] - mean[j]) / std[j] for j in range(x.shape[1])] for i in rows])

    model = LinearSVC(C=1.0, max_iter=10000, random_state=0).fit(scale(train), same[train])
    return test, model.decision_function(scale(test))


def test_cross_validation_matches_brute_force_and_standardises_on_training_folds_only() -> None:
    rng = np.random.default_rng(2)
    folds = np.repeat(np.arange(4), 10)
    same = np.tile(np.repeat([True, False], 5), 4)
    x = rng.normal(size=(40, 3)) + same[:, None] * 0.8
    x[folds == 3] += np.array([5.0, -3.0, 2.0])  # a shifted test fold: pooled statistics would differ
    result = same_not_same_cross_validation(x, same, folds)
    accuracies = []
    for fold in range(4):
        test, scores = _brute_force_fold_scores(x, same, folds, fold)
        np.testing.assert_allclose(result["scores"][test], scores, rtol=1e-6, atol=1e-9)
        accuracies.append(float(((scores > 0) == same[test]).mean()))
    assert result["fold_accuracies"] == pytest.approx(accuracies)
    assert result["accuracy"] == pytest.approx(np.mean(accuracies))
    assert result["folds"] == [0, 1, 2, 3]
    np.testing.assert_array_equal(result["predictions"], result["scores"] > 0)
    pooled = LinearSVC(C=1.0, max_iter=10000, random_state=0)
    pooled_x = (x - x.mean(0)) / x.std(0)
    pooled.fit(pooled_x[folds != 3], same[folds != 3])
    assert not np.allclose(pooled.decision_function(pooled_x[folds == 3]), result["scores"][folds == 3])


def test_separable_pairs_score_perfectly() -> None:
    folds = np.repeat(np.arange(3), 6)
    same = np.tile([True, False], 9)
    x = np.where(same[:, None], 1.0, -1.0) + np.random.default_rng(3).normal(scale=0.1, size=(18, 2))
    result = same_not_same_cross_validation(x, same, folds)
    assert result["accuracy"] == 1.0 and result["auc"] == 1.0 and result["se"] == 0.0
    with pytest.raises(ValueError, match="fold 0"):
        same_not_same_cross_validation(x, np.where(folds == 0, True, same), folds)
