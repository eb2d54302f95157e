"""Evaluation on features: metrics, retrieval, splits, linear probe, logistic regression, few-shot.

Every value is checked against an independent computation (brute-force loops, hand-made cases).
"""
from __future__ import annotations

import numpy as np
import pytest

from eval.fewshot import few_shot_accuracy
from eval.metrics import confusion_matrix, topk_accuracy
from eval.probe import logistic_regression_probabilities, probe_probabilities, train_linear_probe
from eval.retrieval import nearest_neighbours, retrieval_recall
from eval.settings import LinearProbeSettings
from eval.splits import few_shot_draw, label_fraction, stratified_split


def test_topk_accuracy_matches_hand_count() -> None:
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    labels = np.array([1, 1, 0, 2])
    assert topk_accuracy(scores, labels, 1) == 0.25  # only row 0
    assert topk_accuracy(scores, labels, 2) == 0.5  # rows 0 and 1
    assert topk_accuracy(scores, labels, 5) == 1.0  # k beyond C counts every class


def test_confusion_matrix_counts_pairs() -> None:
    matrix = confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def _brute_force_recall(q, ql, g, gl, k):
    def norm(x):
        return sum(a * a for a in x) ** 0.5

    hits = 0
    for i in range(len(q)):
        sims = []
        for j in range(len(g)):
            sims.append(sum(a * b for a, b in zip(q[i], g[j])) / (norm(q[i]) * norm(g[j])))
        ranked = sorted(range(len(g)), key=lambda j: -sims[j])[:k]
        hits += any(gl[j] == ql[i] for j in ranked)
    return hits / len(q)


def test_retrieval_recall_matches_brute_force_loop() -> None:
    rng = np.random.default_rng(3)
    gallery, queries = rng.normal(size=(30, 8)), rng.normal(size=(12, 8))
    gallery_labels, query_labels = rng.integers(0, 4, 30), rng.integers(0, 4, 12)
    ks = [1, 5, 10, 20, 50]
    recall = retrieval_recall(queries, query_labels, gallery, gallery_labels, ks)
    for k in ks:
        assert recall[k] == pytest.approx(_brute_force_recall(queries, query_labels, gallery, gallery_labels, k))
    assert recall[50] == 1.0 and recall[1] < 1.0


def test_nearest_neighbours_are_cosine_ordered() -> None:
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    assert nearest_neighbours(np.array([[2.0, 0.1]]), gallery, 3).tolist() == [[0, 2, 1]]


def test_stratified_split_keeps_every_class_on_both_sides() -> None:
    labels = np.repeat(np.arange(6), [5, 5, 4, 3, 2, 10])
    train, test = stratified_split(labels, 0.3, seed=1)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(labels)))
    for c in range(6):
        n = (labels == c).sum()
        n_test = (labels[test] == c).sum()
        assert n_test == min(max(round(n * 0.3), 1), n - 1) and (labels[train] == c).sum() == n - n_test
    with pytest.raises(ValueError, match="class 1 has 1 video"):
        stratified_split(np.array([0, 0, 1]), 0.5)


def test_label_fraction_is_stratified_with_at_least_one_per_class() -> None:
    labels = np.repeat(np.arange(4), [200, 100, 30, 3])
    for fraction, expected in [(0.01, [2, 1, 1, 1]), (0.1, [20, 10, 3, 1]), (1.0, [200, 100, 30, 3])]:
        kept = label_fraction(labels, fraction, seed=0)
        assert np.bincount(labels[kept], minlength=4).tolist() == expected
        assert len(np.unique(kept)) == len(kept)


def test_few_shot_draw_takes_exactly_k_per_class() -> None:
    labels = np.repeat(np.arange(5), 25)
    rng = np.random.default_rng(0)
    for k in (1, 5, 10, 20):
        drawn = few_shot_draw(labels, k, rng)
        assert np.bincount(labels[drawn]).tolist() == [k] * 5 and len(set(drawn.tolist())) == 5 * k
    with pytest.raises(ValueError, match=r"too few in classes \{1: 2\}"):
        few_shot_draw(np.array([0, 0, 0, 1, 1]), 3, rng)


def _separable(n_per_class: int, n_classes: int, dim: int, seed: int):
    rng = np.random.default_rng(seed)
    centres = np.eye(n_classes, dim) * 10
    labels = np.repeat(np.arange(n_classes), n_per_class)
    return centres[labels] + rng.normal(scale=0.5, size=(len(labels), dim)), labels


def test_linear_probe_and_logreg_reach_one_on_separable_features() -> None:
    train_x, train_y = _separable(20, 6, 32, seed=0)
    test_x, test_y = _separable(10, 6, 32, seed=1)
    probe, losses = train_linear_probe(train_x, train_y, 6, LinearProbeSettings(batch_size=16), seed=0)
    assert len(losses) == 100 and losses[-1] < losses[0]
    assert topk_accuracy(probe_probabilities(probe, test_x), test_y, 1) == 1.0
    assert topk_accuracy(logistic_regression_probabilities(train_x, train_y, test_x, 6), test_y, 1) == 1.0


def test_linear_probe_is_at_chance_on_shuffled_labels() -> None:
    train_x, _ = _separable(20, 6, 32, seed=0)
    test_x, test_y = _separable(20, 6, 32, seed=1)
    shuffled = np.random.default_rng(5).permutation(np.repeat(np.arange(6), 20))
    probabilities = logistic_regression_probabilities(train_x, shuffled, test_x, 6)
    assert topk_accuracy(probabilities, test_y, 1) < 0.5


def test_logistic_regression_gives_zero_to_unseen_classes() -> None:
    train_x, train_y = _separable(5, 3, 8, seed=0)
    probabilities = logistic_regression_probabilities(train_x, train_y, train_x, 5)
    assert probabilities.shape == (15, 5) and np.all(probabilities[:, 3:] == 0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_few_shot_reports_mean_and_spread_over_draws() -> None:
    train_x, train_y = _separable(25, 6, 16, seed=0)
    test_x, test_y = _separable(5, 6, 16, seed=1)
    results = few_shot_accuracy(train_x, train_y, test_x, test_y, 6, shots=[1, 5], draws=4, seed=0)
    for k in (1, 5):
        assert len(results[k]["accuracies"]) == 4
        assert results[k]["mean"] == pytest.approx(np.mean(results[k]["accuracies"]))
        assert results[k]["std"] == pytest.approx(np.std(results[k]["accuracies"]))
        for indices in results[k]["indices"]:
            assert np.bincount(train_y[indices], minlength=6).tolist() == [k] * 6
    assert results[5]["mean"] == 1.0


def test_retrieval_grid_takes_classes_in_turn() -> None:
    from eval.report_figures import grid_queries

    labels = np.array([2, 0, 0, 1, 2, 0])
    assert grid_queries(labels, 6).tolist() == [1, 3, 0, 2, 4, 5]
    assert grid_queries(labels, 2).tolist() == [1, 3]
